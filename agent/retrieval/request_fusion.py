"""Retrieval from a structured request: liked titles and the conversation's titles as two
pseudo-histories for the collaborative retriever, what people recommend in conversations (the
dialogue prior, agent.retrieval.dialogue_prior, when ``recsage train-dialogues`` ran), the need as
hybrid text search, a popularity prior; per-part z-scores (agent.retrieval.fusion) summed with
weights that follow what the request asks for.

The weights were chosen on ReDial train dialogues (eval/conversations/tune.py: the prior counted
on the first 350 dialogues, weights scored on the other 149), never on valid. A request without
titles is carried by its words (text at full weight); its facets and years are hard filters on
every path, so a specific ask does not drown in the titles.
"""

from __future__ import annotations

import numpy as np

from agent.retrieval.fusion import zscore

WEIGHTS = {"hybrid": 1.0, "context": 1.0, "comention": 0.5, "recommended": 1.0, "text": 0.0, "popularity": 0.0}
"""Weights when the conversation names titles. On ReDial train the seeker's words added nothing
over the titles, and the dialogue prior's "recommended" replaced the ratings' popularity."""
TEXT_ONLY_WEIGHTS = {"text": 1.0, "popularity": 0.1}
"""No title: the words carry the request; a small prior for known films breaks near-ties."""


def text_scores(hits: list[tuple[str, float]], item_index: dict[str, int], n_items: int) -> np.ndarray:
    """Search hits (id, score) as one score per retriever item; items not hit get the lowest hit score."""
    known = [(item_index[i], s) for i, s in hits if i in item_index]
    floor = min((s for _, s in known), default=0.0)
    out = np.full(n_items, floor, dtype=np.float64)
    for index, score in known:
        out[index] = score
    return out


def request_parts(retriever, liked: np.ndarray, text: np.ndarray | None, context: np.ndarray | None = None,
                  prior=None, seeds: list[str] = ()) -> dict[str, np.ndarray]:
    """Each part's z-scores over the items not in the pseudo-histories: collaborative ("hybrid"
    from the liked titles, "context" from every title the conversation named), "text" (when the
    request has words), "popularity" (log counts) and, with a dialogue ``prior`` (a DialoguePrior),
    "comention" with the ``seeds`` (catalog ids) and "recommended"."""
    context = np.zeros(0, dtype=np.int64) if context is None else context
    known = np.union1d(liked, context).astype(np.int64)
    parts = {"popularity": zscore(np.log1p(retriever.popularity("test")), known)}
    if len(liked):
        parts["hybrid"] = zscore(retriever.hybrid(liked)[0], liked)
    if len(context):
        parts["context"] = zscore(retriever.hybrid(context)[0], context)
    if text is not None:
        parts["text"] = zscore(text, known)
    if prior is not None and (len(known) or "text" not in parts):
        scores = prior.scores(list(seeds), retriever.split.item_ids)
        if scores["comention"].any():
            parts["comention"] = zscore(scores["comention"], known)
        parts["recommended"] = zscore(scores["recommended"], known)
    return parts


def fuse(parts: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """Weighted sum of the parts present; defaults by which parts the request has."""
    if weights is None:
        weights = WEIGHTS if ("hybrid" in parts or "context" in parts) else TEXT_ONLY_WEIGHTS
    total = np.zeros_like(next(iter(parts.values())))
    for name, values in parts.items():
        total += weights.get(name, 0.0) * values
    return total
