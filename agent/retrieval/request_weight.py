"""A user's history beside a request: how much each steers, by how specific the request is.

With a user (or a history) and a request, agent.recommend ranks the catalog twice: the request
alone, exactly as it is retrieved without a user (named titles as pseudo-histories, words as hybrid
text search), and the history through the collaborative retriever (steered by the request's vector).
The two rankings are z-scored over their union and summed, the request weighted by
:func:`request_weight` and the history by the rest.

The rule: a request's specificity ``s`` counts ``TITLE_POINTS`` per title it names,
``FILTER_POINTS`` per facet it asks for and per year bound, and one per content word (stop words
and "movie" do not count); the request's weight is ``s / (s + HALF)``. So no request leaves the
history alone (0); one vague word ("something fun") weighs as much as the history; a title or a
facet is two thirds the request; "a funny animated movie about toys" (three words and the Animation
genre, s = 5) is 5/6 the request. The weight approaches 1 but never reaches it: the history still
orders what the request leaves tied. Facets and years also stay hard filters on both rankings; the
weight decides only which of the person's two signals orders the survivors.

HALF was chosen on the request benchmark's validation split (`recommend --user U --query` with a
sampled user per request, whose relevance ignores the user, so it only says how much the history may
cost a request): NDCG@10 .476 at HALF 2, .501 at 1, .506 at 0.5. Below 1 the request gains little
and a vague request would stop leaning on the history at all, so 1.
"""

from __future__ import annotations

import numpy as np

from agent.core.text import tokenize
from agent.retrieval.fusion import standardize

TITLE_POINTS = 2
FILTER_POINTS = 2
HALF = 1.0
"""The specificity at which the request and the history weigh the same."""


def specificity(titles: int, facets: int, year_bounds: int, words: int) -> float:
    """How much a request says about what is wanted now (see the module doc)."""
    return float(TITLE_POINTS * titles + FILTER_POINTS * (facets + year_bounds) + words)


def request_weight(titles: int = 0, facets: int = 0, year_bounds: int = 0, words: int = 0) -> float:
    """The request's share of the fused score, in [0, 1); the history gets the rest."""
    s = specificity(titles, facets, year_bounds, words)
    return s / (s + HALF)


def content_words(text: str) -> int:
    """Words of a request that say something about the item (agent.core.text's stop words removed)."""
    return len(tokenize(text or ""))


def fuse_rows(request_rows: list[dict], history_rows: list[dict], weight: float, pool: int) -> list[dict]:
    """The top ``pool`` of two ranked row lists (dicts with "id" and "score"), fused as
    ``weight * z(request) + (1 - weight) * z(history)`` over the union of their ids. An id one list
    lacks gets that list's lowest score: it was below everything that list kept."""
    if not history_rows or weight >= 1.0:
        return request_rows[:pool]
    if not request_rows or weight <= 0.0:
        return history_rows[:pool]
    by_id: dict[str, dict] = {}
    for row in [*request_rows, *history_rows]:
        by_id.setdefault(row["id"], row)
    ids = list(by_id)
    fused = weight * _zscores(request_rows, ids) + (1.0 - weight) * _zscores(history_rows, ids)
    order = np.argsort(-fused, kind="stable")[:pool]
    return [{**by_id[ids[i]], "score": round(float(fused[i]), 6)} for i in order]


def _zscores(rows: list[dict], ids: list[str]) -> np.ndarray:
    scores = {r["id"]: float(r["score"]) for r in rows}
    floor = min(scores.values())
    return standardize(np.array([scores.get(i, floor) for i in ids], dtype=np.float64))
