"""Retrieval from a structured request: liked titles as a pseudo-history for the collaborative
retriever, the need as hybrid text search, a popularity prior; per-part z-scores (agent.retrieval.fusion)
summed with weights that follow what the request asks for.

The weights were chosen on ReDial train dialogues (eval/conversations/tune.py), never on valid.
A request without liked titles is carried by its words (text at full weight); its facets and years
are hard filters on every path, so a specific ask does not drown in the titles.
"""

from __future__ import annotations

import numpy as np

from agent.retrieval.fusion import zscore

WEIGHTS = {"hybrid": 1.0, "text": 0.0, "popularity": 0.5}
"""Weights when the conversation names liked titles: chosen on ReDial train (eval/conversations/tune.py),
where the seeker's words added nothing over the titles; facets and years still filter hard."""
TEXT_ONLY_WEIGHTS = {"text": 1.0, "popularity": 0.1}
"""No liked title: the words carry the request; a small prior for known films breaks near-ties."""


def text_scores(hits: list[tuple[str, float]], item_index: dict[str, int], n_items: int) -> np.ndarray:
    """Search hits (id, score) as one score per retriever item; items not hit get the lowest hit score."""
    known = [(item_index[i], s) for i, s in hits if i in item_index]
    floor = min((s for _, s in known), default=0.0)
    out = np.full(n_items, floor, dtype=np.float64)
    for index, score in known:
        out[index] = score
    return out


def request_parts(retriever, liked: np.ndarray, text: np.ndarray | None) -> dict[str, np.ndarray]:
    """Each part's z-scores over the items not liked: collaborative ("hybrid", from the liked
    titles), "text" (when the request has words) and "popularity" (log counts)."""
    parts = {"popularity": zscore(np.log1p(retriever.popularity("test")), liked)}
    if len(liked):
        parts["hybrid"] = zscore(retriever.hybrid(liked)[0], liked)
    if text is not None:
        parts["text"] = zscore(text, liked)
    return parts


def fuse(parts: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """Weighted sum of the parts present; defaults by which parts the request has."""
    if weights is None:
        weights = WEIGHTS if "hybrid" in parts else TEXT_ONLY_WEIGHTS
    total = np.zeros_like(next(iter(parts.values())))
    for name, values in parts.items():
        total += weights.get(name, 0.0) * values
    return total
