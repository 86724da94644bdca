"""Ingest on a Ray cluster (``recsage ingest --engine ray``): the same work as :mod:`.pipeline`,
with the converters spread over actor pools.

The driver does what needs the store: hashing and change detection (unchanged items never leave
it), removing dropped items, and every write. Workers get the items that changed, as rows of a
``ray.data`` dataset; ``map_batches`` runs them through a pool of :class:`ConvertActor`, each of
which builds its converters once (OCR, Whisper, MiniLM, video) and returns plain records. The
driver upserts the records as they stream back, keyed by item id: a batch Ray reruns after losing
a node overwrites what it wrote before, so every item ends in the store once, and the driver is the
one writer of an embedded store that only one process may write.

Connecting, the CPU check and the actor pool are :mod:`agent.core.ray_cluster`'s, shared with
``eval`` and ``finetune data``. Ray is an optional extra (``pip install 'recsage[ray]'``); nothing
here imports it at module level.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict

import numpy as np

from agent.core.config import Settings
from agent.core.ray_cluster import RayOptions, actor_pool, actor_settings, connected
from agent.ingest.catalog import Item, RowError
from agent.ingest.pipeline import (
    IngestReport,
    ItemRecord,
    MediaFailure,
    _progress,
    build_pipeline,
    catalog_modalities,
    convert_batch,
    new_report,
    plan_ingest,
    write_records,
)
from agent.ingest.store import Store


def to_rows(items: list[Item], digests: dict[str, str]) -> list[dict[str, str]]:
    """Dataset rows: each item as JSON (Arrow would otherwise guess a schema per block from
    catalog-specific facets) with its content hash."""
    return [{"item": it.model_dump_json(), "digest": digests[it.id]} for it in items]


# --- on the workers -------------------------------------------------------------------------------

class ConvertActor:
    """One actor of the pool: builds the converters once, then converts batch after batch."""

    def __init__(self, settings: Settings, modalities: frozenset[str], source: str | None, actor_cpus: int,
                 factory: Callable | None = None):
        self.settings = actor_settings(settings, actor_cpus, ocr_workers=actor_cpus)
        self.pipeline = (factory or build_pipeline)(self.settings, modalities)
        self.source = source

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [Item.model_validate_json(row) for row in batch["item"]]
        digests = {it.id: str(d) for it, d in zip(items, batch["digest"], strict=True)}
        report = IngestReport(store="")
        records = convert_batch(items, digests, self.pipeline, report, self.source)
        failures: dict[str, list[dict]] = {}
        for failure in report.failed:
            failures.setdefault(failure.id, []).append(asdict(failure))
        out = [json.dumps({"record": asdict(r), "failed": failures.get(r.id, []),
                           "seconds": report.seconds if n == 0 else {}})  # the batch's times, once
               for n, r in enumerate(records)]
        return {"out": np.array(out, dtype=object)}


# --- the sink on the driver -----------------------------------------------------------------------

def write_output(store: Store, batch: dict[str, np.ndarray], report: IngestReport, written: set[str]) -> int:
    """Store one batch of actor output; returns how many of its items were new to this run (a
    rerun batch overwrites the same ids and is not counted twice)."""
    decoded = [json.loads(text) for text in batch["out"]]
    records = [ItemRecord(**d["record"]) for d in decoded]
    with report.timed("write"):
        write_records(store, records)
    new = [r.id for r in records if r.id not in written]
    for d in decoded:
        if d["record"]["id"] in new:
            report.failed.extend(MediaFailure(**f) for f in d["failed"])
        for stage, seconds in d["seconds"].items():  # summed over actors: CPU-seconds, not wall time
            report.seconds[stage] = report.seconds.get(stage, 0.0) + seconds
    written.update(new)
    return len(new)


def ingest_with_ray(items: list[Item], store: Store, settings: Settings, options: RayOptions,
                    rejected: list[RowError] | None = None, progress: bool = True, prune: bool = True,
                    source: str | None = None, factory: Callable | None = None) -> IngestReport:
    """:func:`agent.ingest.pipeline.ingest` with the converters on Ray; the same report.
    ``factory`` builds each process's converters (``build_pipeline`` by default)."""
    report = new_report(store, rejected)
    report.notes.append("engine: ray (converter stage seconds are summed over actors)")
    _pipeline, digests, todo = plan_ingest(items, store, settings, report, prune, source, factory)
    if todo:
        actor_kwargs = {"settings": settings, "modalities": catalog_modalities(items), "source": source,
                        "actor_cpus": options.actor_cpus, "factory": factory}
        with connected(options.address) as ray:
            converted = _converted(ray, todo, digests, options, settings.batch_size, actor_kwargs, report)
            written: set[str] = set()
            with _progress(progress, len(todo)) as advance:
                for out in converted.iter_batches(batch_size=None, batch_format="numpy"):
                    advance(write_output(store, out, report, written))
        report.ingested = len(written)
    report.items_in_store = store.count()
    return report


def _converted(ray, todo: list[Item], digests: dict[str, str], options: RayOptions, max_batch: int,
               actor_kwargs: dict, report: IngestReport):
    """The lazy dataset of converted items: ``todo`` through a fixed pool of :class:`ConvertActor`."""
    dataset, actors, batch = actor_pool(ray, to_rows(todo, digests), ConvertActor, actor_kwargs, options, max_batch)
    report.notes.append(f"ray: {actors} actors x {options.actor_cpus} CPUs, {batch} items a batch")
    return dataset
