"""Ingest on a Ray cluster (``recsage ingest --engine ray``): the same work as :mod:`.pipeline`,
with the converters spread over actor pools.

The driver does what needs the store: hashing and change detection (unchanged items never leave
it), removing dropped items, and every write. Workers get the items that changed, as rows of a
``ray.data`` dataset; ``map_batches`` runs them through a pool of :class:`ConvertActor`, each of
which builds its converters once (OCR, Whisper, MiniLM, video) and returns plain records. The
driver upserts the records as they stream back, keyed by item id: a batch Ray reruns after losing
a node overwrites what it wrote before, so every item ends in the store once, and the driver is the
one writer of an embedded store that only one process may write.

Ray is an optional extra (``pip install 'recsage[ray]'``); nothing here imports it at module level.
"""

from __future__ import annotations

import json
import math
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, dataclass

import numpy as np

from agent.core.config import Settings, apply_thread_settings
from agent.core.errors import InputError
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

INSTALL_HINT = "--engine ray needs Ray: pip install 'recsage[ray]'"
BATCHES_PER_ACTOR = 4
"""Batches each actor gets on average: the pool stays balanced to the end, and a lost node costs
one small batch of rework instead of a large one."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    """A running cluster (``host:6379``, ``auto``); None starts a local one."""
    actors: int | None = None
    """Converter actors; None: as many as the cluster's CPUs hold."""
    actor_cpus: int = 1
    """CPUs each actor reserves (and uses as torch/onnxruntime threads and OCR processes)."""


def import_ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray


# --- planning on the driver (no cluster needed) ---------------------------------------------------

def actor_count(requested: int | None, actor_cpus: int, node_cpus: list[float], work_items: int) -> int:
    """How many actors to start: ``requested``, or as many as the cluster's CPUs hold, never more
    than there are items. Refuses what the cluster cannot place instead of waiting on it forever."""
    total, largest = sum(node_cpus), max(node_cpus, default=0)
    if actor_cpus > largest:
        raise InputError(
            f"each Ray actor asks for {actor_cpus} CPUs but the largest node of the cluster has {largest:g}: "
            "lower --ray-actor-cpus or add a larger node"
        )
    if requested is not None and requested * actor_cpus > total:
        raise InputError(
            f"--ray-actors {requested} x {actor_cpus} CPUs each = {requested * actor_cpus} CPUs, but the cluster "
            f"has {total:g}: use --ray-actors {int(total // actor_cpus)} or fewer, or add nodes"
        )
    fits = requested if requested is not None else int(total // actor_cpus)
    return max(1, min(fits, work_items))


def batch_size_for(work_items: int, actors: int, max_batch: int) -> int:
    """Items per actor call: about ``BATCHES_PER_ACTOR`` calls per actor, at most ``max_batch``
    (the one-process ingest's batch) and at least one item."""
    return max(1, min(max_batch, math.ceil(work_items / (actors * BATCHES_PER_ACTOR))))


def to_rows(items: list[Item], digests: dict[str, str]) -> list[dict[str, str]]:
    """Dataset rows: each item as JSON (Arrow would otherwise guess a schema per block from
    catalog-specific facets) with its content hash."""
    return [{"item": it.model_dump_json(), "digest": digests[it.id]} for it in items]


# --- on the workers -------------------------------------------------------------------------------

class ConvertActor:
    """One actor of the pool: builds the converters once, then converts batch after batch."""

    def __init__(self, settings: Settings, modalities: frozenset[str], source: str | None, actor_cpus: int,
                 factory: Callable | None = None):
        # Use exactly the CPUs Ray reserved for this actor, whatever the driver's settings say.
        self.settings = settings.model_copy(update={"threads": actor_cpus, "ocr_workers": actor_cpus})
        apply_thread_settings(self.settings)
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


@contextmanager
def connected(address: str | None) -> Iterator:
    """Ray connected to ``address`` (a local instance when None); shut down after only if this
    call started it (a test's cluster, or a caller's session, stays up)."""
    ray = import_ray()
    # Ray's driver prints cluster events (an actor restarted after its node went) to stdout,
    # which carries the command's --json report: they go to stderr beside the progress.
    with redirect_stdout(sys.stderr), _session(ray, address):
        yield ray


@contextmanager
def _session(ray, address: str | None) -> Iterator[None]:
    started = not ray.is_initialized()
    if started:
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise _unreachable(address, str(exc)) from None
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A HOST:PORT nobody listens on makes ``ray.init`` retry for minutes: one TCP connect first."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit():
        return  # None, "auto" or another form: ray.init answers those itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise _unreachable(address, exc.strerror or str(exc)) from None


def _unreachable(address: str | None, reason: str) -> InputError:
    return InputError(
        f"cannot reach the Ray cluster at {address}: {reason.rstrip('. ')}. Start one with `ray start --head` "
        "(its address is printed there), or drop --ray-address for a local one"
    )


def node_cpus(ray) -> list[float]:
    return [float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]


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
    actors = actor_count(options.actors, options.actor_cpus, node_cpus(ray), len(todo))
    batch = batch_size_for(len(todo), actors, max_batch)
    report.notes.append(f"ray: {actors} actors x {options.actor_cpus} CPUs, {batch} items a batch")
    ray.data.DataContext.get_current().enable_progress_bars = False  # the ingest's own line counts stored items
    dataset = ray.data.from_items(to_rows(todo, digests), override_num_blocks=math.ceil(len(todo) / batch))
    return dataset.map_batches(ConvertActor, batch_size=batch, batch_format="numpy", num_cpus=options.actor_cpus,
                               compute=ray.data.ActorPoolStrategy(size=actors), fn_constructor_kwargs=actor_kwargs)
