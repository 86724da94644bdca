"""Helpers shared by the embedded-store unit tests and the Chroma-server integration tests."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from agent.ingest.store import Store


def unit_vectors(n, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def store_roundtrip(store: Store):
    vecs = unit_vectors(5)
    ids = [f"i{i}" for i in range(5)]
    store.upsert(ids, vecs, [f"doc {i}" for i in ids], [{"title": i, "content_hash": f"h{i}"} for i in ids])
    store.upsert(ids[:2], vecs[:2], ["again", "again"], [{"title": "x", "content_hash": "new"}] * 2)
    assert store.count() == 5
    assert store.hashes(ids + ["absent"]) == {"i0": "new", "i1": "new", "i2": "hi2", "i3": "hi3", "i4": "hi4"}
    hits = store.query(vecs[3], k=2)
    assert hits[0].id == "i3" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(store.query(vecs[0], k=50)) == 5  # k above the catalog size is capped
    # deleting reaches every per-item collection, and only the ids each one holds
    store.upsert(ids[3:], vecs[3:], None, [{"title": i} for i in ids[3:]], name="items_image")
    store.upsert(ids[:1], vecs[:1], None, [{"title": "a"}], name="other")
    assert store.item_collections() == ["items", "items_image"]
    assert store.delete(["i0", "i4", "absent"]) == {"items": 2, "items_image": 1}
    assert sorted(store.ids()) == ["i1", "i2", "i3"] and store.ids("items_image") == ["i3"]
    assert store.count("other") == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
