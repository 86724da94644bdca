"""``recsage eval --engine ray``: the protocol's users ranked by a pool of Ray actors.

Each :class:`EvalActor` opens the project's retriever (the same store path or Chroma URL and
artifacts as the driver) and, for system ``rerank``, loads the reranker once; it then scores its
users with :func:`eval.harness.score_user`, the function the one-process eval calls. The driver
gets the per-user ranks and run rows back in user order (:func:`agent.core.ray_cluster.map_in_order`)
and builds the same :class:`~eval.harness.EvalResult` as ``run_system``, so the metrics come from
the same code. All ``(system, alpha)`` rows of one command are scored in one pass over the users,
as the local reranker's per-history cache makes the LLM run once per user for every alpha.
"""

from __future__ import annotations

import time

from agent.core.errors import InputError
from agent.core.progress import progress_bar
from agent.core.ray_cluster import (
    OrderedActor,
    RayOptions,
    actor_settings,
    map_in_order,
)
from eval.harness import EvalResult, eval_result, score_user
from eval.rerank_seq import RerankingRetriever, reranking_retriever

USERS_PER_BATCH = 16
"""At most this many users a call: several calls per actor even on a small sample."""


def check_ray_eval(candidate_order: str) -> None:
    """What the Ray engine cannot reproduce: a shuffled candidate order draws from one random
    sequence in user order, which actors that split the users would not share."""
    if candidate_order == "shuffled":
        raise InputError("--candidate-order shuffled draws one random sequence over all users in order, which "
                         "actors cannot share: run it with --engine local")


class EvalActor(OrderedActor):
    """One actor: the project's retriever (and reranker) once, then user after user."""

    def __init__(self, project, settings, runs: list[tuple[str, float | None]], split_name: str,
                 candidate_order: str, seed: int, actor_cpus: int, opener=None):
        from agent.retrieval.retriever import open_retriever

        settings = actor_settings(settings, actor_cpus)
        retriever = (opener or open_retriever)(project, settings)
        if any(system == "rerank" for system, _ in runs):
            retriever = reranking_retriever(retriever, settings, candidate_order, seed, words=project.words)
        self.retriever, self.runs, self.split_name = retriever, runs, split_name

    def handle(self, users: list[int]) -> list[dict]:
        return [self._user(user) for user in users]

    def _user(self, user: int) -> dict:
        """The user's (rank, run row) for every row of the command, and what the reranker spent on it."""
        counts = _rerank_counts(self.retriever)
        scored = []
        for system, alpha in self.runs:
            if system == "rerank":
                self.retriever.alpha = alpha
            scored.append(score_user(self.retriever, system, self.split_name, user))
        after = _rerank_counts(self.retriever)
        return {"scored": scored, "rerank": {"seconds": after["seconds"][len(counts["seconds"]):],
                                             "returned": after["returned"] - counts["returned"],
                                             "outside": after["outside"] - counts["outside"]}}


def _rerank_counts(retriever) -> dict:
    if not isinstance(retriever, RerankingRetriever):
        return {"seconds": [], "returned": 0, "outside": 0}
    return {"seconds": list(retriever.seconds), "returned": retriever.returned, "outside": retriever.outside_candidates}


def eval_on_ray(split, runs: list[tuple[str, float | None]], split_name: str, users: list[int], actor_kwargs: dict,
                options: RayOptions, progress: bool = True,
                notes: list[str] | None = None) -> tuple[list[EvalResult], dict]:
    """One :class:`EvalResult` per ``(system, alpha)`` of ``runs``, as ``run_system`` would give
    for ``users``, and the reranker's counts summed over actors (``seconds`` per user, ``returned``,
    ``outside``). ``actor_kwargs``: :class:`EvalActor`'s project, settings, candidate order, seed."""
    kwargs = {**actor_kwargs, "runs": runs, "split_name": split_name, "actor_cpus": options.actor_cpus}
    start = time.perf_counter()
    with progress_bar(f"eval on ray ({split_name})", len(users), enabled=progress) as advance:
        outputs = map_in_order(users, EvalActor, kwargs, options, USERS_PER_BATCH, advance, notes)
    seconds = time.perf_counter() - start
    results = [eval_result(split, system, split_name, users, [tuple(o["scored"][n]) for o in outputs], seconds)
               for n, (system, _) in enumerate(runs)]
    rerank = {"seconds": [s for o in outputs for s in o["rerank"]["seconds"]],
              "returned": sum(o["rerank"]["returned"] for o in outputs),
              "outside": sum(o["rerank"]["outside"] for o in outputs)}
    return results, rerank


def rerank_stats(counts: dict, settings, candidate_order: str, seed: int, alpha: float | None) -> dict:
    """The ``rerank`` entry of an eval row from the actors' counts, in the local row's shape."""
    driver = RerankingRetriever(None, None, {}, [], depth=settings.rerank_depth, alpha=alpha,
                                order=candidate_order, seed=seed, seconds=list(counts["seconds"]),
                                outside_candidates=counts["outside"], returned=counts["returned"])
    return driver.stats()
