"""Photo requests: the text search over a photo's OCR text, fused with the photo's image vector
against the catalog's image vectors (a trained image encoder's collection).

Both score lists meet through per-request z-scores (agent.retrieval.fusion); an item only one
system returned gets that system's lowest score. With weight 0, or without an image vector, the
ranking is the text search's alone, so turning the fusion off is exactly OCR-only.
"""

from __future__ import annotations

import numpy as np

from agent.ingest.image_encoder import COLLECTION
from agent.ingest.store import Store
from agent.retrieval.text_search import POOL, _zscore_over


def image_hits(store: Store, vector: np.ndarray, k: int = POOL, collection: str = COLLECTION) -> dict[str, float]:
    """Cosine similarity of ``vector`` to the ``k`` nearest catalog image vectors, by item id."""
    return {h.id: h.score for h in store.query(vector, k, name=collection)}


def fuse_photo(text_ranked: list[tuple[str, float]], image: dict[str, float], weight: float,
               k: int) -> list[tuple[str, float]]:
    """The top ``k`` of z(text) + weight * z(image) over the union of both pools."""
    text = dict(text_ranked)
    if weight <= 0 or not image:
        return text_ranked[:k]
    if not text:
        return sorted(image.items(), key=lambda kv: -kv[1])[:k]
    ids = sorted(set(text) | set(image))
    fused = _zscore_over(text, ids) + weight * _zscore_over(image, ids)
    order = np.argsort(-fused, kind="stable")[:k]
    return [(ids[i], float(fused[i])) for i in order]
