"""Training data for the image encoder: catalog images, their frozen card vectors, a held-out
split by item id, and the decoded images cached in the run folder.

Card vectors are read from the store's ``items`` collection (what ingest embedded with the text
embedder), so they are computed once, by the same model that embeds queries. Decoding and resizing
~3,000 JPEGs costs more than an epoch at this size, so the pixels are cached as one uint8 array,
reused while the item list and the input size are unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.core.config import Settings
from agent.core.errors import InputError
from agent.core.io import read_json, write_json
from agent.core.progress import progress_bar
from agent.ingest.image_encoder import to_pixels
from agent.ingest.images import is_url, load_image
from agent.ingest.item import Item
from agent.ingest.store import TEXT_COLLECTION, Store, decode_facets

PIXELS_FILE = "images.npy"
PIXELS_INDEX = "images.json"


@dataclass
class ImageData:
    ids: list[str]
    pixels: np.ndarray  # uint8 (n, height, width, 3)
    vectors: np.ndarray  # float32 (n, dim), L2-normalised card vectors
    heldout: np.ndarray  # bool (n,)
    labels: list[tuple[str, ...]]  # the facet's values per item (genres)
    skipped: list[dict] = field(default_factory=list)

    def digest(self) -> str:
        """What a checkpoint was trained on: the ids and which of them are held out."""
        h = hashlib.sha256("\n".join(self.ids).encode())
        h.update(self.heldout.tobytes())
        return h.hexdigest()


def is_heldout(item_id: str, fraction: float, seed: int) -> bool:
    """A fixed split by id alone: an item's side never changes when others are added or removed."""
    digest = hashlib.sha256(f"{seed}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def image_items(items: list[Item]) -> list[Item]:
    """Items with a local image file (URLs are never fetched for training)."""
    return [it for it in items if it.image and not is_url(it.image) and Path(it.image).is_file()]


def card_vectors(store: Store, ids: list[str], facet: str) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]]]:
    """Stored card vectors and facet values by id; ids the store lacks are absent."""
    col = store.collection(TEXT_COLLECTION, create=False)
    vectors, labels = {}, {}
    for start in range(0, len(ids), 1000):
        got = col.get(ids=ids[start:start + 1000], include=["embeddings", "metadatas"])
        for item_id, vector, meta in zip(got["ids"], got["embeddings"], got["metadatas"], strict=True):
            vectors[item_id] = np.asarray(vector, dtype=np.float32)
            labels[item_id] = tuple(decode_facets(meta or {}).get(facet, ()))
    return vectors, labels


def cached_pixels(run_dir: Path, items: list[Item], size: tuple[int, int], settings: Settings,
                  progress: bool = True) -> tuple[list[str], np.ndarray, list[dict]]:
    """(ids, uint8 pixels, skipped) for ``items``, from the run folder's cache when it matches."""
    index_file, pixels_file = run_dir / PIXELS_INDEX, run_dir / PIXELS_FILE
    wanted = {"size": list(size), "items": [[it.id, str(it.image)] for it in items]}
    if index_file.is_file() and pixels_file.is_file():
        index = read_json(index_file)
        if index.get("wanted") == wanted:
            return index["ids"], np.load(pixels_file), index["skipped"]
    ids, arrays, skipped = [], [], []
    with progress_bar("decode images", len(items), plain_line=lambda d, n: f"decoded {d}/{n} images",
                      enabled=progress) as advance:
        for n, item in enumerate(items, start=1):
            try:
                arrays.append(to_pixels(load_image(item.image, settings), size))
                ids.append(item.id)
            except InputError as exc:  # one bad image never stops the rest
                skipped.append({"id": item.id, "file": str(item.image), "reason": str(exc)})
            if n % 250 == 0 or n == len(items):  # a log gets a line per 250 images, not per image
                advance(250 if n % 250 == 0 else n % 250)
    pixels = np.stack(arrays) if arrays else np.zeros((0, *size, 3), dtype=np.uint8)
    run_dir.mkdir(parents=True, exist_ok=True)
    np.save(pixels_file, pixels)
    write_json(index_file, {"wanted": wanted, "ids": ids, "skipped": skipped}, indent=None)
    return ids, pixels, skipped


def load_image_data(items: list[Item], store: Store, settings: Settings, run_dir: Path, *,
                    size: tuple[int, int], heldout_fraction: float, seed: int, facet: str,
                    progress: bool = True) -> ImageData:
    """Every catalog item that has both a local image and a stored card vector."""
    with_images = image_items(items)
    if not with_images:
        raise InputError("no catalog item has a local image file: the image encoder trains on catalog images "
                         "(MovieLens: pass --posters DIR)")
    vectors, labels = card_vectors(store, [it.id for it in with_images], facet)
    missing = [it.id for it in with_images if it.id not in vectors]
    usable = [it for it in with_images if it.id in vectors]
    ids, pixels, skipped = cached_pixels(run_dir, usable, size, settings, progress)
    skipped = skipped + [{"id": i, "reason": "not in the store: run `recsage ingest` first"} for i in missing]
    if len(ids) < 4:
        raise InputError(f"only {len(ids)} items have both an image and a stored card: need at least 4")
    heldout = np.array([is_heldout(i, heldout_fraction, seed) for i in ids], dtype=bool)
    if heldout.all() or not heldout.any():
        raise InputError(f"the held-out split of {len(ids)} items left one side empty: change heldout_fraction or seed")
    return ImageData(ids, pixels, np.stack([vectors[i] for i in ids]), heldout, [labels[i] for i in ids], skipped)
