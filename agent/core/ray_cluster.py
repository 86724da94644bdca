"""The one way recsage's batch jobs use a Ray cluster (``--engine ray`` of ``ingest``, ``eval`` and
``finetune data``): connecting, checking that the asked-for actors fit the cluster's CPUs, and
running a list of work rows through a fixed pool of actors.

Each job keeps what needs one writer or one random sequence on the driver and sends the rest as
rows of a ``ray.data`` dataset through ``map_batches`` to a pool of actors, each of which loads its
models once. :func:`map_in_order` numbers the rows, so the driver gets every row's output back at
its row's place whatever order Ray finishes the batches in (a batch Ray reruns after losing a node
fills the same places again).

Ray is an optional extra (``pip install 'recsage[ray]'``); nothing here imports it at module level.
"""

from __future__ import annotations

import json
import math
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass

import numpy as np

from agent.core.config import Settings, apply_thread_settings
from agent.core.errors import InputError

INSTALL_HINT = "--engine ray needs Ray: pip install 'recsage[ray]'"
BATCHES_PER_ACTOR = 4
"""Batches each actor gets on average: the pool stays balanced to the end, and a lost node costs
one small batch of rework instead of a large one."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None
    """A running cluster (``host:6379``, ``auto``); None starts a local one."""
    actors: int | None = None
    """Actors of the pool; None: as many as the cluster's CPUs hold."""
    actor_cpus: int = 1
    """CPUs each actor reserves (and uses as torch/onnxruntime threads)."""


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
    and at least one item."""
    return max(1, min(max_batch, math.ceil(work_items / (actors * BATCHES_PER_ACTOR))))


def actor_settings(settings: Settings, actor_cpus: int, **update) -> Settings:
    """The settings an actor runs with: exactly the CPUs Ray reserved for it as threads, whatever
    the driver's settings say, applied to this process."""
    mine = settings.model_copy(update={"threads": actor_cpus, **update})
    apply_thread_settings(mine)
    return mine


# --- the cluster ----------------------------------------------------------------------------------

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


def actor_pool(ray, rows: list[dict], actor: type, actor_kwargs: dict, options: RayOptions, max_batch: int):
    """``(dataset, actors, batch)``: the lazy dataset of ``rows`` through a fixed pool of ``actor``
    (a class whose ``__call__`` takes and returns a numpy-format batch), sized to the cluster."""
    actors = actor_count(options.actors, options.actor_cpus, node_cpus(ray), len(rows))
    batch = batch_size_for(len(rows), actors, max_batch)
    ray.data.DataContext.get_current().enable_progress_bars = False  # each job counts its own rows
    dataset = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch))
    mapped = dataset.map_batches(actor, batch_size=batch, batch_format="numpy", num_cpus=options.actor_cpus,
                                 compute=ray.data.ActorPoolStrategy(size=actors), fn_constructor_kwargs=actor_kwargs)
    return mapped, actors, batch


# --- jobs whose output keeps the input's order ----------------------------------------------------

class OrderedActor:
    """Base of the actors of :func:`map_in_order`: subclasses load their models in ``__init__`` and
    turn a list of JSON-decoded work rows into as many JSON-encodable outputs in :meth:`handle`."""

    def handle(self, work: list) -> list:
        raise NotImplementedError

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.handle([json.loads(text) for text in batch["work"]])
        if len(outputs) != len(batch["work"]):
            raise RuntimeError(f"{type(self).__name__} returned {len(outputs)} outputs for {len(batch['work'])} rows")
        return {"index": np.asarray(batch["index"]), "out": np.array([json.dumps(o) for o in outputs], dtype=object)}


def indexed_rows(work: list) -> list[dict]:
    """Dataset rows: each work row as JSON (Arrow would otherwise guess a schema per block) with its place."""
    return [{"index": n, "work": json.dumps(w)} for n, w in enumerate(work)]


def collect_in_order(batches, total: int, advance: Callable[[int], None] = lambda n: None) -> list:
    """The decoded outputs of ``batches`` (numpy-format batches of an :class:`OrderedActor`) at
    their rows' places; a rerun batch overwrites the places it filled before. Refuses a gap."""
    out: list = [None] * total
    filled = np.zeros(total, dtype=bool)
    for batch in batches:
        fresh = 0
        for index, text in zip(batch["index"], batch["out"], strict=True):
            fresh += not filled[int(index)]
            filled[int(index)] = True
            out[int(index)] = json.loads(text)
        advance(fresh)
    if not filled.all():
        raise RuntimeError(f"Ray returned {int(filled.sum())} of {total} rows")
    return out


def map_in_order(work: list, actor: type, actor_kwargs: dict, options: RayOptions, max_batch: int,
                 advance: Callable[[int], None] = lambda n: None, notes: list[str] | None = None) -> list:
    """``actor(**actor_kwargs).handle`` over ``work`` on the cluster of ``options``: the outputs in
    ``work``'s order, as one process calling ``handle`` on all of it would return them."""
    if not work:
        return []
    with connected(options.address) as ray:
        dataset, actors, batch = actor_pool(ray, indexed_rows(work), actor, actor_kwargs, options, max_batch)
        if notes is not None:
            notes.append(f"ray: {actors} actors x {options.actor_cpus} CPUs, {batch} rows a batch")
        return collect_in_order(dataset.iter_batches(batch_size=None, batch_format="numpy"), len(work), advance)
