"""Ingest: catalog items -> converters -> context cards + vectors -> Chroma.

Work happens in batches; each batch is written before the next starts, so a killed ingest loses
at most one batch and a rerun picks up where it stopped. Items whose content hash (catalog facts,
media bytes, converter versions, card template) matches the store are skipped without model work.
Items whose media failed are stored with what succeeded and retried on the next run. A media path
is stored in the item's metadata (where the poster route finds it) only once a converter has
accepted the file: a file no converter could read is never served.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.core.config import Settings, apply_thread_settings
from agent.core.errors import ModelNotReady, RecsageError
from agent.core.io import sha256_file
from agent.core.progress import progress_bar
from agent.core.timing import accumulate_seconds
from agent.ingest.cards import CARD_VERSION, build_card, build_embedding_text
from agent.ingest.catalog import Item, RowError
from agent.ingest.converters import Conversion, MediaConverter, TextEmbedder
from agent.ingest.images import is_url
from agent.ingest.store import IMAGE_COLLECTION, TEXT_COLLECTION, Store, encode_facets

PARTIAL = ":partial"  # suffix on the stored hash of an item whose media failed: retry next run


@dataclass
class MediaFailure:
    id: str
    file: str
    converter: str
    reason: str


@dataclass
class IngestReport:
    store: str
    total: int = 0
    ingested: int = 0
    unchanged: int = 0
    removed: int = 0  # stored items the catalog no longer has, deleted from the store
    items_in_store: int = 0
    skipped: list[RowError] = field(default_factory=list)
    failed: list[MediaFailure] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        out["skipped"] = [{"file": r.file, "line": r.line, "reason": r.reason, **({"kept": True} if r.kept else {})}
                          for r in self.skipped]
        out["seconds"] = {k: round(v, 3) for k, v in self.seconds.items()}
        return out

    def timed(self, stage: str):
        return accumulate_seconds(self.seconds, stage)


@dataclass
class Pipeline:
    """The converters one ingest (or one query) uses."""

    embedder: TextEmbedder
    image: list[MediaConverter]
    audio: list[MediaConverter]
    notes: list[str]
    video: list[MediaConverter] = field(default_factory=list)

    def versions(self, item: Item | None = None) -> str:
        parts = [self.embedder] + self.image + self.audio
        if item is not None and item.video:  # only items with a video: the others' hashes stay as they were
            parts += self.video
        return ",".join(f"{c.name}@{c.version}" for c in parts)


def build_text_embedder(settings: Settings) -> TextEmbedder:
    """The one registered text embedder (cards and queries must share a vector space)."""
    from agent.plugins import converter_classes

    found = [(n, c) for n, (c, _) in converter_classes().items() if issubclass(c, TextEmbedder)]
    if len(found) != 1:
        names = ", ".join(n for n, _ in found) or "none"
        raise RecsageError(f"exactly one text embedder must be registered, found: {names}")
    embedder = found[0][1](settings)
    reason = embedder.unavailable_reason()
    if reason is not None:
        raise ModelNotReady(reason)
    return embedder


MODALITIES = ("image", "audio", "video")
SOURCE_KEY = "catalog"
"""Metadata key holding the catalog an item was ingested from."""


def catalog_modalities(items: list[Item]) -> frozenset[str]:
    """The media kinds some item of the catalog has: only their converters need to be ready."""
    return frozenset(kind for kind in MODALITIES if any(getattr(it, kind) for it in items))


def build_pipeline(settings: Settings, modalities: frozenset[str] = frozenset(MODALITIES)) -> Pipeline:
    """Instantiate registered converters for ``modalities``; a required one that is not ready stops
    the ingest (a text-only catalog needs only the text embedder)."""
    from agent.plugins import converter_classes

    media: dict[str, list[MediaConverter]] = {kind: [] for kind in MODALITIES}
    notes: list[str] = []
    for name, (cls, plugin) in sorted(converter_classes().items()):
        if not issubclass(cls, MediaConverter) or cls.modality not in modalities:
            continue
        converter = cls(settings)
        reason = converter.unavailable_reason()
        if reason is None:
            media[converter.modality].append(converter)
        elif getattr(cls, "optional", False):
            notes.append(f"{name} ({plugin}) not used: {reason}")
        else:
            raise ModelNotReady(f"converter {name!r} from plugin {plugin!r} is not ready: {reason}")
    return Pipeline(build_text_embedder(settings), media["image"], media["audio"], notes, video=media["video"])


def _file_digest(ref: str | None) -> str:
    if not ref:
        return "-"
    if is_url(ref):
        return ref
    try:
        return sha256_file(ref)
    except OSError as exc:
        return f"unreadable:{exc.errno}"


def _card_template_digest() -> str:
    from prompts import TEMPLATE_DIR

    template = (TEMPLATE_DIR / "context_card.j2").read_bytes()
    return CARD_VERSION + ":" + hashlib.sha256(template).hexdigest()[:16]


def content_hash(item: Item, pipeline_versions: str, template_digest: str) -> str:
    payload = json.dumps(
        {
            # an item without a video hashes as it did before videos existed
            "item": item.model_dump(mode="json", exclude={"video"} if item.video is None else None),
            "image": _file_digest(item.image),
            "audio": _file_digest(item.audio),
            **({"video": _file_digest(item.video)} if item.video else {}),
            "converters": pipeline_versions,
            "card": template_digest,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _metadata(item: Item, digest: str, media: dict[str, str], failed: bool, accepted: set[str],
              source: str | None = None) -> dict:
    """``accepted``: the media attributes ("image", "audio") a converter read without error;
    ``source``: the catalog the item came from (what a later ingest of it may remove)."""
    meta: dict = {
        "title": item.title,
        **encode_facets(item.facets),
        "content_hash": digest + (PARTIAL if failed else ""),
    }
    if source:
        meta[SOURCE_KEY] = source
    if item.year is not None:
        meta["year"] = item.year
    if item.image and "image" in accepted:
        meta["image"] = item.image
    if item.audio and "audio" in accepted:
        meta["audio"] = item.audio
    if item.video and "video" in accepted:
        meta["video"] = item.video
    url = item.metadata.get("image_url") or (item.image if is_url(item.image) else None)
    if url:  # kept for clients to show, never fetched
        meta["image_url"] = str(url)
    meta.update({k: v for k, v in media.items() if v})
    return meta


def _run_media(
    converters: list[MediaConverter], items: list[Item], attr: str, report: IngestReport,
    media: dict[str, dict[str, str]], image_vectors: dict[str, dict[str, list[float]]], failed_ids: set[str],
    accepted: dict[str, set[str]],
) -> None:
    # URLs are never fetched (a catalog must not make the server reach other hosts): kept as metadata
    targets = [it for it in items if getattr(it, attr) and not is_url(getattr(it, attr))]
    if not targets:
        return
    for converter in converters:
        with report.timed(f"{converter.modality}:{converter.name}"):
            results = converter.convert_many([Path(getattr(it, attr)) for it in targets])
        for item, result in zip(targets, results, strict=True):
            if isinstance(result, Exception):
                failed_ids.add(item.id)
                report.failed.append(
                    MediaFailure(item.id, getattr(item, attr), converter.name, str(result) or type(result).__name__)
                )
                continue
            assert isinstance(result, Conversion)
            accepted[item.id].add(attr)
            for stage, seconds in result.details.get("stage_seconds", {}).items():  # e.g. video frames, speech
                key = f"{converter.modality}:{stage}"
                report.seconds[key] = report.seconds.get(key, 0.0) + seconds
            media[item.id].update(result.card_fields)
            if result.embedding is not None and converter.modality == "image":
                # each image model's vectors in its own collection (CLIP: items_image; a trained encoder: its own)
                image_vectors.setdefault(getattr(converter, "collection", IMAGE_COLLECTION), {})[item.id] = result.embedding


@dataclass
class ItemRecord:
    """What the store gets for one converted item; plain data, so that another process (a Ray
    actor) can produce it and the one writer store it."""

    id: str
    title: str
    card: str
    vector: list[float]
    metadata: dict
    image_vectors: dict[str, list[float]] = field(default_factory=dict)  # collection -> vector


def convert_batch(batch: list[Item], digests: dict[str, str], pipeline: Pipeline, report: IngestReport,
                  source: str | None = None) -> list[ItemRecord]:
    """Media converters, cards and text vectors for ``batch``; per-item failures go to ``report``."""
    media: dict[str, dict[str, str]] = defaultdict(dict)
    image_vectors: dict[str, dict[str, list[float]]] = {}
    failed_ids: set[str] = set()
    accepted: dict[str, set[str]] = defaultdict(set)
    _run_media(pipeline.image, batch, "image", report, media, image_vectors, failed_ids, accepted)
    _run_media(pipeline.audio, batch, "audio", report, media, image_vectors, failed_ids, accepted)
    _run_media(pipeline.video, batch, "video", report, media, image_vectors, failed_ids, accepted)
    with report.timed("cards"):
        cards = [build_card(item, media[item.id]) for item in batch]
        texts = [build_embedding_text(item, media[item.id]) for item in batch]
    with report.timed("embed:text"):
        vectors = pipeline.embedder.embed(texts)
    return [
        ItemRecord(it.id, it.title, card, [float(x) for x in vector],
                   _metadata(it, digests[it.id], media[it.id], it.id in failed_ids, accepted[it.id], source),
                   {name: by_id[it.id] for name, by_id in image_vectors.items() if it.id in by_id})
        for it, card, vector in zip(batch, cards, vectors, strict=True)
    ]


def write_records(store: Store, records: list[ItemRecord]) -> None:
    """Upsert keyed by item id, so writing a record twice (a retried batch) leaves it once."""
    collections = sorted({name for r in records for name in r.image_vectors})
    for collection in collections:
        has = [r for r in records if collection in r.image_vectors]
        store.upsert([r.id for r in has], [r.image_vectors[collection] for r in has], None,
                     [{"title": r.title} for r in has], name=collection)
    # The text record goes last: its hash marks the item done, so a kill before this line
    # means the item is redone next run.
    store.upsert([r.id for r in records], [r.vector for r in records], [r.card for r in records],
                 [r.metadata for r in records], name=TEXT_COLLECTION)


def _ingest_batch(batch: list[Item], digests: dict[str, str], pipeline: Pipeline, store: Store, report: IngestReport,
                  source: str | None = None) -> None:
    records = convert_batch(batch, digests, pipeline, report, source)
    with report.timed("write"):
        write_records(store, records)
    report.ingested += len(batch)


def ingest(items: list[Item], store: Store, settings: Settings, rejected: list[RowError] | None = None,
           progress: bool = True, prune: bool = True, source: str | None = None) -> IngestReport:
    """Store what changed in ``items``, each tagged with ``source`` (the catalog's path). With a
    ``source`` and ``prune`` (``items`` is the whole catalog, not a ``--limit`` sample), also delete
    the stored items of that catalog it no longer has; items of other catalogs in the store stay."""
    report = new_report(store, rejected)
    apply_thread_settings(settings)
    pipeline, digests, todo = plan_ingest(items, store, settings, report, prune, source)
    if not todo:
        report.items_in_store = store.count()
        return report
    try:
        with _progress(progress, len(todo)) as advance:
            for start in range(0, len(todo), settings.batch_size):
                batch = todo[start : start + settings.batch_size]
                _ingest_batch(batch, digests, pipeline, store, report, source)
                advance(len(batch))
    finally:
        for converter in pipeline.image + pipeline.audio + pipeline.video:
            if hasattr(converter, "close"):
                converter.close()  # e.g. stop OCR worker processes
    report.items_in_store = store.count()
    return report


def new_report(store: Store, rejected: list[RowError] | None) -> IngestReport:
    report = IngestReport(store=store.location, total=sum(not r.kept for r in rejected or []))
    report.skipped.extend(rejected or [])
    return report


def plan_ingest(items: list[Item], store: Store, settings: Settings, report: IngestReport, prune: bool,
                source: str | None, factory=None) -> tuple[Pipeline, dict[str, str], list[Item]]:
    """The converters, every item's content hash, and the items whose stored hash differs (the
    work); counts the unchanged and removes what the catalog dropped. ``factory``: how the
    pipeline is built (``build_pipeline`` by default)."""
    report.total += len(items)
    with report.timed("setup"):
        pipeline = (factory or build_pipeline)(settings, catalog_modalities(items))
    report.notes.extend(pipeline.notes)
    with report.timed("hash"):
        template = _card_template_digest()
        digests = {it.id: content_hash(it, pipeline.versions(it), template) for it in items}
        stored = store.hashes(list(digests))
    todo = [it for it in items if stored.get(it.id) != digests[it.id]]
    report.unchanged = len(items) - len(todo)
    with report.timed("remove"):
        remove_dropped(items, store, report, prune, source)
    return pipeline, digests, todo


def remove_dropped(items: list[Item], store: Store, report: IngestReport, prune: bool, source: str | None) -> None:
    """Delete from every item collection the stored items of catalog ``source`` that ``items`` lacks.

    Never on a partial catalog or an empty one: an empty load is far likelier a wrong path or a
    broken file than a shop that sold everything, and deleting is the one step a rerun cannot undo.
    Items another catalog put in the same store are not this catalog's to remove."""
    if source is None:
        return
    if not prune:
        report.notes.append("ran on part of the catalog (--limit): items it left out were not removed from the store")
        return
    if not items:
        report.notes.append("the catalog gave no items: nothing was removed from the store")
        return
    keep = {it.id for it in items}
    dropped = [i for i in store.ids(where={SOURCE_KEY: source}) if i not in keep]
    if not dropped:
        return
    removed = store.delete(dropped)
    report.removed = removed.get(TEXT_COLLECTION, 0)
    shown = ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else "")
    per_collection = ", ".join(f"{n} {c}" for n, c in sorted(removed.items()))
    report.notes.append(f"removed {len(dropped)} items no longer in the catalog ({shown}) from: {per_collection}")


@contextmanager
def _progress(enabled: bool, total: int):
    if not enabled:
        yield lambda n: None
        return
    # A log file or CI output gets no live bar, so it gets a line after every committed batch saying
    # how far the ingest got (a rerun skips what is stored).
    with progress_bar("ingest", total, plain_line=lambda done, of: f"ingest: {done}/{of} items stored") as advance:
        yield advance
