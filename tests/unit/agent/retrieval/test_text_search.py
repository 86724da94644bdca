import numpy as np
import pytest

from agent.ingest.catalog import Item
from agent.ingest.store import Store
from agent.retrieval.text_search import HybridTextSearch, _zscore_over
from tests.conftest import FakeEmbedder


def test_zscore_over_fills_missing_with_the_lowest_score():
    z = _zscore_over({"a": 3.0, "b": 1.0}, ["a", "b", "c"])  # c missing -> 1.0; values 3, 1, 1
    mean, std = 5 / 3, np.std([3, 1, 1])
    assert z == pytest.approx([(3 - mean) / std, (1 - mean) / std, (1 - mean) / std])
    assert list(_zscore_over({"a": 2.0}, ["a", "b"])) == [0.0, 0.0]  # no spread: no opinion


def test_hybrid_search_finds_lexical_and_dense_matches(tmp_path, monkeypatch, fake_settings):
    items = [Item(id="1", title="Heat", tags=("heist",)), Item(id="2", title="Quiet drama"),
             Item(id="3", title="Toys", tags=("toys", "animated"))]
    fake = FakeEmbedder()
    monkeypatch.setattr("agent.ingest.pipeline.build_text_embedder", lambda settings: fake)
    store = Store(tmp_path)
    store.upsert([i.id for i in items], fake.embed([f"{i.title} {' '.join(i.tags)}" for i in items]),
                 ["card"] * 3, [{"title": i.title} for i in items])
    search = HybridTextSearch(store, fake_settings, items)
    assert search.search("heist", k=1)[0][0] == "1"
    assert search.search("animated toys", k=1)[0][0] == "3"
