"""The LLM reranker on the sequential (leave-one-out) protocol.

:class:`RerankingRetriever` wraps the hybrid retriever so :func:`eval.harness.run_system` scores it
like any other system: the retriever's top ``depth`` unseen items are handed to the reranker in a
chosen order (``retriever``, ``shuffled`` or ``reversed``: a position-bias check), the reranker's
scores are mixed with the retriever's, and those candidates are placed above every other item,
which keep the retriever's order. Counts what a user of the row needs besides the metrics: how often
the reranker's output named an item outside its candidates (zero by construction, measured anyway)
and the reranker's seconds per user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.core.project import MOVIE_WORDS, CatalogWords
from agent.core.timing import percentiles
from agent.rerank.prompt import HISTORY_TITLES, SEQUENTIAL_REQUEST, title_line
from agent.rerank.reranker import interpolate
from eval.bench import timed

CANDIDATE_ORDERS = ("retriever", "shuffled", "reversed")


def order_candidates(ids: Sequence[str], order: str, rng: np.random.Generator) -> list[str]:
    """The candidates in the order the reranker sees them."""
    if order == "retriever":
        return list(ids)
    if order == "reversed":
        return list(reversed(ids))
    if order == "shuffled":
        return [ids[i] for i in rng.permutation(len(ids))]
    raise ValueError(f"candidate order must be one of {CANDIDATE_ORDERS}, got {order!r}")


def history_titles(titles: Sequence[str], history: np.ndarray, n: int = HISTORY_TITLES) -> list[str]:
    """Titles of the last ``n`` history items, oldest first."""
    return [titles[i] for i in history[-n:]]


def catalog_text(retriever) -> tuple[dict[str, str], list[str]]:
    """What the reranker reads about the protocol's items: id -> context card, dense -> "Title (year)"."""
    docs = retriever.store.get(retriever.split.item_ids)
    titles = [title_line(m) for m in retriever.item_meta]
    return {i: d["document"] for i, d in docs.items()}, titles


def reranking_retriever(retriever, settings, order: str = "retriever", seed: int = 0,
                        words: CatalogWords = MOVIE_WORDS) -> "RerankingRetriever":
    """The hybrid retriever with the configured LLM reranker over its top candidates (system ``rerank``),
    its prompt in the catalog's ``words`` (the project's)."""
    from agent.rerank.reranker import load_reranker

    cards, titles = catalog_text(retriever)
    return RerankingRetriever(retriever, load_reranker(settings, words=words), cards, titles, depth=settings.rerank_depth,
                              alpha=settings.rerank_alpha, order=order, seed=seed)


@dataclass
class RerankingRetriever:
    """Duck-types :class:`agent.retrieval.retriever.Retriever` for ``run_system``: system ``rerank``."""

    retriever: object
    reranker: object
    cards: dict[str, str]  # item id -> context card
    titles: list[str]  # dense item -> "Title (year)"
    depth: int = 20
    alpha: float | None = 0.8
    order: str = "retriever"
    seed: int = 0
    seconds: list[float] = field(default_factory=list)
    outside_candidates: int = 0
    returned: int = 0

    def __post_init__(self):
        if self.order not in CANDIDATE_ORDERS:
            raise ValueError(f"candidate order must be one of {CANDIDATE_ORDERS}, got {self.order!r}")
        self._rng = np.random.default_rng(self.seed)
        self._cache: dict[bytes, list[tuple[str, float]]] = {}

    @property
    def split(self):
        return self.retriever.split

    def scores(self, system: str, history: np.ndarray, split_name: str = "test") -> np.ndarray:
        if system != "rerank":
            return self.retriever.scores(system, history, split_name)
        base = np.asarray(self.retriever.scores("hybrid", history, split_name), dtype=np.float64).copy()
        masked = base.copy()
        masked[history] = -np.inf
        head = np.argsort(-masked, kind="stable")[: self.depth]
        ids = [self.split.item_ids[i] for i in head]
        llm = self._llm_scores(history, ids)
        retriever_scores = [(i, float(base[d])) for i, d in zip(ids, head)]
        mixed = [i for i, _ in llm] if self.alpha is None else [i for i, _ in interpolate(retriever_scores, llm, self.alpha)]
        # Candidates go above every other item, in the mixed order; the rest keep their scores.
        top = float(np.max(masked[np.isfinite(masked)])) if np.isfinite(masked).any() else 0.0
        dense = self.split.item_index
        for rank, item_id in enumerate(mixed):
            if item_id in dense:
                base[dense[item_id]] = top + 1.0 + (len(mixed) - rank)
        return base

    def _llm_scores(self, history: np.ndarray, ids: list[str]) -> list[tuple[str, float]]:
        """The reranker's (id, score) list; cached per history, so rows that differ only in alpha
        (``eval --rerank-alpha A --rerank-alpha B``) run the LLM once per user."""
        key = history.tobytes()
        if key not in self._cache:
            shown = order_candidates(ids, self.order, self._rng)
            llm, seconds = timed(self.reranker.rerank, SEQUENTIAL_REQUEST,
                                 [(i, self.cards.get(i, i)) for i in shown], history_titles(self.titles, history))
            self.seconds.append(seconds)
            candidates = set(ids)
            self.returned += len(llm)
            self.outside_candidates += sum(1 for i, _ in llm if i not in candidates)
            self._cache[key] = llm
        return self._cache[key]

    def stats(self) -> dict:
        seconds = percentiles(self.seconds or [0.0])
        return {
            "candidate_order": self.order,
            "depth": self.depth,
            "alpha": self.alpha,
            "out_of_candidate_rate": self.outside_candidates / max(self.returned, 1),
            "rerank_p50_s": seconds["p50"],
            "rerank_p95_s": seconds["p95"],
        }
