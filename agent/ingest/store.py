"""The Chroma store: embedded ``PersistentClient`` by default, ``HttpClient`` for a ``chroma run`` server.

Item ids are the catalog ids, so every write is an idempotent upsert: an ingest killed mid-batch
and rerun ends with each item present exactly once. Each record carries the content hash of the
inputs that produced it; ingest compares hashes to skip unchanged items without model work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from agent.core.errors import InputError, RecsageError

TEXT_COLLECTION = "items"  # context cards + text (MiniLM) vectors
IMAGE_COLLECTION = "items_image"  # CLIP image vectors, when real CLIP weights are configured
MAX_CHROMA_BATCH = 5000  # Chroma rejects batches above ~5,461


@dataclass
class Hit:
    id: str
    score: float  # cosine similarity, higher is better
    metadata: dict
    document: str | None


def _client(path: Path | None, url: str | None):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if url:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if not parsed.hostname:
            raise InputError(f"--chroma-url {url!r} is not a URL like http://localhost:8000")
        try:
            return chromadb.HttpClient(
                host=parsed.hostname, port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                ssl=parsed.scheme == "https", settings=chroma_settings,
            )
        except Exception as exc:  # chromadb raises plain exceptions on connection failure
            raise InputError(
                f"cannot reach the Chroma server at {url}: {exc}. Start one with "
                "`chroma run --path DIR --port PORT` or drop --chroma-url to use an embedded store"
            ) from None
    if path is None:
        raise InputError("no store given: pass --store DIR (embedded) or --chroma-url URL (server)")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"--store {path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


class Store:
    def __init__(self, path: Path | None = None, url: str | None = None):
        self.location = url or str(path)
        self.client = _client(path, url)
        self._collections: dict[str, object] = {}

    def collection(self, name: str = TEXT_COLLECTION, create: bool = True, space: str = "cosine"):
        """``space`` applies when the collection is created: "cosine" for normalised text/image
        vectors, "ip" for collaborative vectors whose dot product is the score."""
        if name not in self._collections:
            if create:
                self._collections[name] = self.client.get_or_create_collection(
                    name, metadata={"hnsw:space": space}, embedding_function=None
                )
            else:
                try:
                    self._collections[name] = self.client.get_collection(name, embedding_function=None)
                except Exception:
                    raise InputError(
                        f"the store at {self.location} has no {name!r} collection: run "
                        "`recsage ingest ... --store` first"
                    ) from None
        return self._collections[name]

    def count(self, name: str = TEXT_COLLECTION) -> int:
        return self.collection(name).count()

    def hashes(self, ids: list[str], name: str = TEXT_COLLECTION) -> dict[str, str]:
        """id -> stored content hash, for the ids that are present."""
        found: dict[str, str] = {}
        col = self.collection(name)
        for start in range(0, len(ids), MAX_CHROMA_BATCH):
            got = col.get(ids=ids[start : start + MAX_CHROMA_BATCH], include=["metadatas"])
            for item_id, meta in zip(got["ids"], got["metadatas"], strict=True):
                found[item_id] = (meta or {}).get("content_hash", "")
        return found

    def upsert(self, ids, embeddings, documents, metadatas, name: str = TEXT_COLLECTION,
               space: str = "cosine") -> None:
        col = self.collection(name, space=space)
        for start in range(0, len(ids), MAX_CHROMA_BATCH):
            end = start + MAX_CHROMA_BATCH
            col.upsert(
                ids=list(ids[start:end]), embeddings=[list(map(float, v)) for v in embeddings[start:end]],
                documents=list(documents[start:end]) if documents is not None else None,
                metadatas=list(metadatas[start:end]),
            )

    def query(self, vector, k: int, where: dict | None = None, name: str = TEXT_COLLECTION) -> list[Hit]:
        col = self.collection(name, create=False)
        if k <= 0:
            raise InputError(f"k must be a positive integer, got {k}")
        total = col.count()
        if total == 0:
            raise InputError(f"the store at {self.location} is empty: run `recsage ingest` first")
        try:
            res = col.query(
                query_embeddings=[list(map(float, vector))], n_results=min(k, total), where=where,
                include=["metadatas", "documents", "distances"],
            )
        except Exception as exc:
            if "dimension" in str(exc).lower():
                raise RecsageError(
                    f"query vector does not match the store's vectors ({exc}); was the store "
                    "built with another embedding model? Re-ingest into a new --store"
                ) from None
            raise
        return [
            Hit(id=i, score=1.0 - float(d), metadata=m or {}, document=doc)
            for i, d, m, doc in zip(res["ids"][0], res["distances"][0], res["metadatas"][0], res["documents"][0], strict=True)
        ]

    def get(self, ids: list[str], name: str = TEXT_COLLECTION) -> dict[str, dict]:
        got = self.collection(name, create=False).get(ids=ids, include=["metadatas", "documents"])
        return {
            i: {"metadata": m or {}, "document": d}
            for i, m, d in zip(got["ids"], got["metadatas"], got["documents"], strict=True)
        }

    # --- deleting items the catalog dropped -----------------------------------------------------

    def item_collections(self) -> list[str]:
        """The store's per-item collections: ``items`` and every ``items_<kind>`` (image, video,
        sasrec...), so a dropped item leaves all of them, whichever stage wrote it."""
        names = [c if isinstance(c, str) else c.name for c in self.client.list_collections()]
        return sorted(n for n in names if n == TEXT_COLLECTION or n.startswith(TEXT_COLLECTION + "_"))

    def ids(self, name: str = TEXT_COLLECTION, where: dict | None = None) -> list[str]:
        """Every id in a collection (those whose metadata match ``where``), read in pages (Chroma
        caps the size of one read)."""
        col, out = self.collection(name), []
        while True:
            page = col.get(where=where, include=[], limit=MAX_CHROMA_BATCH, offset=len(out))["ids"]
            out.extend(page)
            if len(page) < MAX_CHROMA_BATCH:
                return out

    def delete(self, ids: list[str]) -> dict[str, int]:
        """Delete ``ids`` from every item collection; returns how many each collection held."""
        removed: dict[str, int] = {}
        for name in self.item_collections():
            col = self.collection(name, create=False)
            for start in range(0, len(ids), MAX_CHROMA_BATCH):
                chunk = list(ids[start : start + MAX_CHROMA_BATCH])
                present = col.get(ids=chunk, include=[])["ids"]
                if present:
                    col.delete(ids=present)
                    removed[name] = removed.get(name, 0) + len(present)
        return removed


FACETS_KEY = "facets"
LEGACY_GENRES_KEY = "genres"
"""Stores written before facets held one JSON list under "genres": read as the facet "genres"."""


def encode_facets(facets: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The metadata entries of an item's facets: one JSON object {name: [values]} (Chroma
    metadata is scalar), facets without values left out."""
    kept = {name: list(values) for name, values in facets.items() if values}
    return {FACETS_KEY: json.dumps(kept, ensure_ascii=False)} if kept else {}


def decode_facets(meta: Mapping) -> dict[str, tuple[str, ...]]:
    """An item's facets from its stored metadata, new ("facets") or old ("genres") layout."""
    if meta.get(FACETS_KEY):
        return {str(k): tuple(map(str, v)) for k, v in json.loads(meta[FACETS_KEY]).items() if v}
    genres = json.loads(meta.get(LEGACY_GENRES_KEY) or "[]")
    return {"genres": tuple(map(str, genres))} if genres else {}
