"""``recsage finetune data --engine ray``: the sequential windows' candidate retrieval on Ray actors.

A window's model work is the hybrid retriever's scores over its history
(:func:`finetune.rerank_data.sequences.window_candidates`); each :class:`WindowActor` opens the
project's retriever once and runs that function on its share of the windows. The driver gets the
candidate lists back in window order (:func:`agent.core.ray_cluster.map_in_order`) and does the
rest in :func:`~finetune.rerank_data.sequences.build_sequence_rows`'s one loop: the negatives come
from one random sequence over the windows in order, so the rows equal the one-process run's.

The synthetic requests stay on the driver: each request is drawn from that same kind of one random
sequence, and whether a draw is kept depends on the scan of the catalog made for it.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.core.progress import progress_bar
from agent.core.ray_cluster import (
    OrderedActor,
    RayOptions,
    actor_settings,
    map_in_order,
)
from finetune.rerank_data.sequences import window_candidates

WINDOWS_PER_BATCH = 32
"""At most this many windows a call: several calls per actor even for a few hundred windows."""


class WindowActor(OrderedActor):
    """One actor: the project's retriever once, then window after window."""

    def __init__(self, project, settings, depth: int, actor_cpus: int, opener: Callable | None = None):
        from agent.retrieval.retriever import open_retriever

        self.retriever = (opener or open_retriever)(project, actor_settings(settings, actor_cpus))
        self.depth = depth

    def handle(self, windows: list[list[int]]) -> list[list[str]]:
        return [window_candidates(self.retriever, (user, t), self.depth) for user, t in windows]


def ray_candidates(project, settings, depth: int, options: RayOptions, progress: bool = True,
                   notes: list[str] | None = None,
                   opener: Callable | None = None) -> Callable[[list[tuple[int, int]]], list[list[str]]]:
    """The ``candidates`` function of ``build_sequence_rows`` that asks a pool of :class:`WindowActor`
    (``opener``: how each opens the retriever; the project's by default)."""
    kwargs = {"project": project, "settings": settings, "depth": depth, "actor_cpus": options.actor_cpus,
              "opener": opener}

    def candidates(windows: list[tuple[int, int]]) -> list[list[str]]:
        with progress_bar("windows on ray", len(windows), enabled=progress) as advance:
            return map_in_order([list(w) for w in windows], WindowActor, kwargs, options, WINDOWS_PER_BATCH,
                                advance, notes)

    return candidates
