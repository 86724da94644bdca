"""The measured comparison behind ``photo_image_weight``: held-out images used as photo queries,
ranked by the text search over their OCR text alone (what a photo request does without image
vectors) and by that search fused with the encoder's image vectors (agent.retrieval.photo).

A photo of a poster is not the catalog's file: each query image is "re-photographed" (cropped,
tilted, rescaled, blurred, jitter in brightness, recompressed as JPEG, seeded per item) before OCR
and the encoder see it, so an image-to-image lookup cannot win by matching identical bytes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from agent.core.config import Settings
from agent.core.errors import InputError
from agent.core.io import read_json, write_json
from agent.core.project import Project
from agent.ingest.catalog import load_source
from agent.ingest.image_encoder import COLLECTION, ImageEncoder
from agent.ingest.store import TEXT_COLLECTION, Store
from agent.retrieval.photo import fuse_photo, image_hits
from agent.retrieval.retriever import open_project_store
from agent.retrieval.text_search import POOL, HybridTextSearch
from finetune.image_encoder.config import ImageEncoderConfig
from finetune.image_encoder.pipeline import REPORT_FILE, prepare_data
from finetune.image_encoder.trainer import ENCODER_DIR

PHOTOS_DIR = "photo_queries"
PHOTO_QUERIES_FILE = "photo_queries.json"


def rephotograph(source: Path, target: Path, seed: int) -> Path:
    """A seeded simulated photo of an image: crop, tilt, rescale, blur, brightness, JPEG."""
    from PIL import Image, ImageEnhance, ImageFilter

    rng = np.random.default_rng(seed)
    with Image.open(source) as opened:
        img = opened.convert("RGB")
    w, h = img.size
    keep = rng.uniform(0.88, 0.97)
    cw, ch = int(w * keep), int(h * keep)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x, y, x + cw, y + ch)).rotate(float(rng.uniform(-4, 4)), resample=Image.BICUBIC,
                                                   expand=False, fillcolor=(128, 128, 128))
    scale = rng.uniform(0.9, 1.4)
    img = img.resize((int(cw * scale), int(ch * scale)), Image.BICUBIC)
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.85, 1.15)))
    target.parent.mkdir(parents=True, exist_ok=True)
    img.save(target, format="JPEG", quality=int(rng.integers(55, 80)))
    return target


def ensure_image_vectors(store: Store, encoder: ImageEncoder, ids: list[str], pixels: np.ndarray,
                         titles: dict[str, str]) -> None:
    """The catalog's image vectors in their own collection (as ingest with the encoder stores them),
    always re-encoded: a retrained encoder must not be compared through its predecessor's vectors."""
    vectors = encoder.encode_pixels(pixels)
    store.upsert(ids, vectors, None, [{"title": titles.get(i, "")} for i in ids], name=COLLECTION)


def _query_ids(heldout_ids: list[str], n: int) -> list[str]:
    """A fixed sample of held-out ids (hash order), the same for every run of the comparison."""
    return sorted(heldout_ids, key=lambda i: hashlib.sha256(f"photo:{i}".encode()).hexdigest())[:n]


def ocr_texts(settings: Settings, photos: list[Path]) -> list[str]:
    from agent.plugins import load_converter

    ocr = load_converter(settings, "ocr")
    try:
        results = ocr.convert_many(photos)
    finally:
        if hasattr(ocr, "close"):
            ocr.close()
    return ["" if isinstance(r, Exception) else r.card_fields.get("poster_text", "") for r in results]


def score_system(rankings: list[list[str]], query_ids: list[str], labels: dict[str, set[str]]) -> dict:
    """Own item's Recall@1/@10 and the mean share of the top 10 sharing a facet value with the query item."""
    ranks = [r.index(q) if q in r else len(r) + POOL for r, q in zip(rankings, query_ids, strict=True)]
    overlap = [np.mean([bool(labels.get(i, set()) & labels.get(q, set())) for i in r[:10]]) if r else 0.0
               for r, q in zip(rankings, query_ids, strict=True)]
    ranks_arr = np.asarray(ranks)
    return {"recall@1": round(float(np.mean(ranks_arr < 1)), 4), "recall@10": round(float(np.mean(ranks_arr < 10)), 4),
            "facet_overlap@10": round(float(np.mean(overlap)), 4)}


def untrained_hits(encoder: ImageEncoder, seed: int, ids: list[str], pixels: np.ndarray,
                   photos: np.ndarray) -> list[dict[str, float]]:
    """Control: the same tower untrained (its seeded initialisation). A photo of a poster finds
    the poster's own file by near-duplicate features even so; what training adds is the rest."""
    import torch

    from agent.ingest.image_encoder import build_tower, encode_with

    torch.manual_seed(seed)
    tower = build_tower(encoder.spec)
    catalog = encode_with(tower, pixels, encoder.dimension)
    queries = encode_with(tower, photos, encoder.dimension)
    out = []
    for scores in queries @ catalog.T:
        top = np.argsort(-scores, kind="stable")[:POOL]
        out.append({ids[i]: float(scores[i]) for i in top})
    return out


def _rankings(texts, vectors, searcher, store, weights, control) -> dict[str, list[list[str]]]:
    systems: dict[str, list[list[str]]] = {"OCR only (today)": []}
    systems.update({f"OCR + image vectors, weight {w:g}": [] for w in weights})
    systems["image vectors only"] = []
    systems["OCR + image -> card vectors, weight 1"] = []
    systems["control: OCR + untrained tower, weight 1"] = []
    for text, vector, untrained in zip(texts, vectors, control, strict=True):
        ranked = searcher.search(text, POOL) if text.strip() else []
        image = image_hits(store, vector)
        systems["OCR only (today)"].append([i for i, _ in ranked])
        for w in weights:
            systems[f"OCR + image vectors, weight {w:g}"].append([i for i, _ in fuse_photo(ranked, image, w, POOL)])
        systems["image vectors only"].append([i for i, _ in fuse_photo([], image, 1.0, POOL)])
        cards = image_hits(store, vector, collection=TEXT_COLLECTION)
        systems["OCR + image -> card vectors, weight 1"].append([i for i, _ in fuse_photo(ranked, cards, 1.0, POOL)])
        systems["control: OCR + untrained tower, weight 1"].append([i for i, _ in fuse_photo(ranked, untrained, 1.0, POOL)])
    return systems


def compare_photo_queries(project: Project, settings: Settings, run_dir: Path, *, queries: int = 300,
                          weights: tuple[float, ...] = (0.5, 1.0), progress: bool = True) -> dict:
    run_dir = Path(run_dir)
    if not (run_dir / REPORT_FILE).is_file() or "encoder" not in read_json(run_dir / REPORT_FILE):
        raise InputError(f"no finished training in {run_dir}: run `recsage train-image-encoder --run-dir {run_dir}` first")
    config = ImageEncoderConfig.from_mapping(read_json(run_dir / REPORT_FILE)["training"]["config"], source=str(run_dir))
    data = prepare_data(project, settings, config, run_dir, progress)
    encoder = ImageEncoder(run_dir / ENCODER_DIR, threads=settings.threads)
    items = load_source(project.catalog).items
    by_id = {it.id: it for it in items}
    store = open_project_store(project)
    ensure_image_vectors(store, encoder, data.ids, data.pixels, {i: by_id[i].title for i in data.ids if i in by_id})
    query_ids = _query_ids([i for i, h in zip(data.ids, data.heldout, strict=True) if h], queries)
    photos = [rephotograph(Path(by_id[q].image), run_dir / PHOTOS_DIR / f"{q}.jpg", seed=n)
              for n, q in enumerate(query_ids)]
    texts = ocr_texts(settings, photos)
    from agent.ingest.image_encoder import to_pixels
    from agent.ingest.images import load_image

    photo_pixels = np.stack([to_pixels(load_image(p, settings), encoder.size) for p in photos])
    vectors = encoder.encode_pixels(photo_pixels)
    control = untrained_hits(encoder, config.seed, data.ids, data.pixels, photo_pixels)
    searcher = HybridTextSearch(store, settings, items)
    labels = {it.id: set(it.facets.get(config.facet, ())) for it in items}
    systems = _rankings(texts, vectors, searcher, store, weights, control)
    result = {"queries": len(query_ids), "no_ocr_text": sum(not t.strip() for t in texts), "facet": config.facet,
              "catalog_items": store.count(), "chance@10": round(10 / store.count(), 5),
              "systems": [{"system": name, **score_system(r, query_ids, labels)} for name, r in systems.items()]}
    write_json(run_dir / PHOTO_QUERIES_FILE, result)
    return result
