"""Chroma store: embedded round trip and clear errors (the server mode is in tests/integration)."""

from __future__ import annotations

import pytest

from agent.core.errors import InputError
from agent.ingest.store import Store
from tests.fakes.store import free_port, store_roundtrip, unit_vectors


def test_embedded_store(tmp_path):
    store_roundtrip(Store(tmp_path / "s"))
    with pytest.raises(InputError, match="positive"):
        Store(tmp_path / "s").query(unit_vectors(1)[0], k=0)


def test_store_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        Store(tmp_path / "file")
    with pytest.raises(InputError, match="--store"):
        Store(None, None)
    with pytest.raises(InputError, match="recsage ingest"):
        Store(tmp_path / "empty").query(unit_vectors(1)[0], k=3)


def test_unreachable_server_is_a_clear_error():
    with pytest.raises(InputError, match="cannot reach the Chroma server"):
        Store(url=f"http://127.0.0.1:{free_port()}").count()


def test_facets_are_stored_as_one_json_object_and_old_genres_lists_still_read():
    from agent.ingest.store import decode_facets, encode_facets

    meta = encode_facets({"category": ("Running Shoes",), "brand": ("Acme", "Zest"), "colour": ()})
    assert meta == {"facets": '{"category": ["Running Shoes"], "brand": ["Acme", "Zest"]}'}  # scalar for Chroma
    assert decode_facets(meta) == {"category": ("Running Shoes",), "brand": ("Acme", "Zest")}
    assert encode_facets({}) == {} and decode_facets({}) == {}
    # a store written before facets: {"genres": "[...]"}
    assert decode_facets({"title": "Heat", "genres": '["Action", "Crime"]'}) == {"genres": ("Action", "Crime")}
    assert decode_facets({"genres": "[]"}) == {}
