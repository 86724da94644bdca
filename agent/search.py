"""Text search over the context cards (the first retrieval stage; hybrid retrieval builds on it)."""

from __future__ import annotations

import json

from agent.config import Settings
from agent.store import Store


def hit_to_json(hit) -> dict:
    meta = hit.metadata
    return {
        "id": hit.id,
        "title": meta.get("title"),
        "year": meta.get("year"),
        "genres": json.loads(meta.get("genres", "[]")),
        "score": round(hit.score, 6),
    }


def search_text(store: Store, settings: Settings, text: str, k: int, where: dict | None = None) -> list[dict]:
    from agent.ingest import build_text_embedder

    vector = build_text_embedder(settings).embed([text])[0]
    return [hit_to_json(h) for h in store.query(vector, k, where=where)]
