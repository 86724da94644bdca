"""Text search over the context cards (the first retrieval stage; hybrid retrieval builds on it)."""

from __future__ import annotations

import numpy as np

from agent.core.config import Settings
from agent.ingest.store import Store, decode_facets
from agent.retrieval.fusion import standardize


def hit_to_json(hit) -> dict:
    meta = hit.metadata
    return {
        "id": hit.id,
        "title": meta.get("title"),
        "year": meta.get("year"),
        "facets": {name: list(values) for name, values in decode_facets(meta).items()},
        "score": round(hit.score, 6),
    }


def search_text(store: Store, settings: Settings, text: str, k: int, where: dict | None = None) -> list[dict]:
    from agent.ingest.pipeline import build_text_embedder

    vector = build_text_embedder(settings).embed([text])[0]
    return [hit_to_json(h) for h in store.query(vector, k, where=where)]


LEXICAL_WEIGHT = 1.0
DENSE_WEIGHT = 0.25
"""Weights of BM25 (titles, facets, tags) and MiniLM card similarity in hybrid text search, chosen
on the validation half of the request benchmark (README gives the measurements)."""
POOL = 200


def _zscore_over(scores: dict[str, float], ids: list[str]) -> np.ndarray:
    """z-scores over ``ids``; an id a system did not return gets that system's lowest score."""
    values = np.array([scores.get(i, np.nan) for i in ids], dtype=np.float64)
    floor = np.nanmin(values) if np.isfinite(values).any() else 0.0
    return standardize(np.where(np.isnan(values), floor, values))


class HybridTextSearch:
    """Lexical (BM25) + dense (MiniLM over the Chroma cards) search for a request's text.

    BM25 catches exact words (tags, facet values, names) that MiniLM blurs; MiniLM catches paraphrases.
    Both pools are fused by per-request z-scores.
    """

    def __init__(self, store: Store, settings: Settings, items):
        from agent.ingest.pipeline import build_text_embedder
        from agent.retrieval.bm25 import Bm25Index, catalog_bm25_docs

        self.store = store
        self.lexical = Bm25Index(catalog_bm25_docs(items))
        self.embedder = build_text_embedder(settings)

    def search(self, text: str, k: int = 100) -> list[tuple[str, float]]:
        lexical = dict(self.lexical.search(text, POOL))
        dense = {h.id: h.score for h in self.store.query(self.embedder.embed([text])[0], POOL)}
        ids = sorted(set(lexical) | set(dense))
        fused = LEXICAL_WEIGHT * _zscore_over(lexical, ids) + DENSE_WEIGHT * _zscore_over(dense, ids)
        order = np.argsort(-fused, kind="stable")[:k]
        return [(ids[i], float(fused[i])) for i in order]
