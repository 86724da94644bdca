"""Retriever on a tiny hand-made split and a real embedded Chroma store (fast)."""

import json

import numpy as np
import pandas as pd
import pytest

from agent.core.config import Settings
from agent.core.errors import InputError
from agent.ingest.store import Store, encode_facets
from agent.retrieval.interactions import split_from_interactions
from agent.retrieval.retriever import (
    HYBRID_FILE,
    RETRIEVER_DIR,
    Filters,
    Retriever,
    facet_filters,
)

# Items 10..15; item vectors on axes so content similarity is easy to reason about.
ITEMS = {"10": ("Toy", "Animation", 1995), "11": ("War", "Drama", 1998), "12": ("Cars", "Animation", 2006),
         "13": ("Noir", "Crime", 1950), "14": ("Space", "Sci-Fi", 2010), "15": ("Robots", "Animation", 2008)}
VECTORS = {"10": [1, 0, 0], "11": [0, 1, 0], "12": [0.9, 0.1, 0], "13": [0, 0.8, 0.2], "14": [0, 0, 1], "15": [0.8, 0, 0.2]}


@pytest.fixture
def retriever(tmp_path):
    rows = []
    for u, seq in {"1": ["10", "12", "11", "14"], "2": ["11", "13", "10", "15"], "3": ["14", "15", "12", "13"]}.items():
        rows += [(int(u), int(i), 4.0, t) for t, i in enumerate(seq)]
    split = split_from_interactions(pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]))
    store = Store(tmp_path)
    ids = list(ITEMS)
    vecs = np.asarray([VECTORS[i] for i in ids], dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    store.upsert(ids, vecs, ["card"] * len(ids),
                 [{"title": t, "genres": json.dumps([g]), "year": y} for t, g, y in ITEMS.values()])
    return Retriever(store, tmp_path, split, Settings(home=tmp_path))


def _idx(r, *ids):
    return np.array([r.split.item_index[i] for i in ids])


def test_content_recommends_nearest_unseen_items(retriever):
    items, timings = retriever.recommend(_idx(retriever, "10"), k=2, system="content")
    assert [c.id for c in items] == ["12", "15"]  # the two nearest to Toy, Toy itself masked
    assert [c.rank for c in items] == [1, 2] and items[0].title == "Cars"
    assert set(timings) == {"score", "fetch"}


def test_content_user_vector_weights_recent_items_more(retriever):
    vec = retriever.content_user_vector(_idx(retriever, "11", "10"))  # 10 is the most recent
    assert vec @ retriever.content_items[_idx(retriever, "10")[0]] > vec @ retriever.content_items[_idx(retriever, "11")[0]]


def test_filters(retriever):
    # the fixture's store has the metadata of a store written before facets: {"genres": "[...]"}
    animation = Filters({"genres": ("Animation",)})
    got = retriever.recommend(_idx(retriever, "10"), k=6, system="content", filters=animation)[0]
    assert {c.id for c in got} == {"12", "15"} and got[0].facets == {"genres": ["Animation"]}
    got = retriever.recommend(_idx(retriever, "10"), k=6, system="content", filters=Filters(year_min=2000, year_max=2007))[0]
    assert [c.id for c in got] == ["12"]
    with pytest.raises(InputError, match="unknown genres value.*valid genres: Animation, Crime"):
        retriever.recommend(_idx(retriever, "10"), k=3, system="content", filters=Filters({"genres": ("Cartoon",)}))
    with pytest.raises(InputError, match="no facet 'brand'; its facets: genres"):
        retriever.recommend(_idx(retriever, "10"), k=3, system="content", filters=Filters({"brand": ("Acme",)}))


@pytest.fixture
def shop(tmp_path):
    """Items with two facets in the new metadata layout (one JSON object under "facets")."""
    rows = []
    for u, seq in {"1": ["a", "b", "c", "d"], "2": ["b", "c", "d", "a"], "3": ["c", "d", "a", "b"]}.items():
        rows += [(u, i, 1.0, t) for t, i in enumerate(seq)]
    split = split_from_interactions(pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]))
    facets = {"a": {"category": ["Shoes"], "brand": ["Acme"]}, "b": {"category": ["Shoes"], "brand": ["Zest"]},
              "c": {"category": ["Socks", "Shoes"], "brand": ["Acme"]}, "d": {"category": ["Hats"]}}
    store = Store(tmp_path)
    store.upsert(list(facets), np.eye(4, dtype=np.float32), ["card"] * 4,
                 [{"title": i.upper(), **encode_facets(f)} for i, f in facets.items()])
    return Retriever(store, tmp_path, split, Settings(home=tmp_path))


def test_facet_filters_or_within_a_facet_and_across_facets(shop):
    def kept(facets):
        return {shop.split.item_ids[i] for i in np.flatnonzero(shop.filter_mask(Filters(facets)))}

    assert kept({"category": ("Shoes",)}) == {"a", "b", "c"}
    assert kept({"category": ("Socks", "Hats")}) == {"c", "d"}
    assert kept({"category": ("Shoes",), "brand": ("Acme",)}) == {"a", "c"}
    assert kept({"brand": ("Zest", "Acme"), "category": ("Hats",)}) == set()
    with pytest.raises(InputError, match=r"unknown brand value\(s\) \['Nike'\]; valid brand: Acme, Zest"):
        kept({"brand": ("Nike",)})


def test_facet_options_from_the_command_line():
    assert facet_filters(["Comedy", "Drama", "Comedy"], ["brand=Acme", " category = Running Shoes "]) == {
        "genres": ("Comedy", "Drama"), "brand": ("Acme",), "category": ("Running Shoes",)}
    for bad in ("brand", "=Acme", "brand="):
        with pytest.raises(InputError, match="write NAME=VALUE"):
            facet_filters(pairs=[bad])
    assert not Filters({"genres": ()}).active()  # a facet without values filters nothing


@pytest.mark.parametrize("k, message", [(0, "positive"), (7, "larger than the catalog")])
def test_bad_k(retriever, k, message):
    with pytest.raises(InputError, match=message):
        retriever.recommend(_idx(retriever, "10"), k=k, system="content")


def test_empty_history_and_unknown_user(retriever):
    with pytest.raises(InputError, match="empty"):
        retriever.recommend(np.array([], dtype=np.int64), k=2, system="content")
    with pytest.raises(InputError, match="unknown user '999'"):
        retriever.user_history("999")
    assert list(retriever.user_history("1")) == list(_idx(retriever, "10", "12", "11", "14"))
    dense, unknown = retriever.history_from_ids(["10", "77"])
    assert list(dense) == list(_idx(retriever, "10")) and unknown == ["77"]


def test_hybrid_needs_training_then_fuses_zscores(retriever, tmp_path):
    with pytest.raises(InputError, match="recsage train-retriever"):
        retriever.recommend(_idx(retriever, "10"), k=2, system="hybrid")
    (tmp_path / RETRIEVER_DIR).mkdir()
    (tmp_path / RETRIEVER_DIR / HYBRID_FILE).write_text(json.dumps({"weights": {"ease": 1.0, "content": 0.0}}))

    class FakeEase:  # prefers item 14 above all
        def scores(self, history):
            s = np.zeros(retriever.split.n_items)
            s[_idx(retriever, "14")] = 5.0
            return s

    retriever.__dict__["ease"] = FakeEase()
    items = retriever.recommend(_idx(retriever, "10"), k=2, system="hybrid")[0]
    assert items[0].id == "14" and set(items[0].sources) == {"ease"}
    # a query vector pointing at "Noir" pulls it up through the query weight
    query = np.asarray(VECTORS["13"], dtype=np.float32) / np.linalg.norm(VECTORS["13"])
    items = retriever.recommend(_idx(retriever, "10"), k=2, system="hybrid", query_vector=query)[0]
    assert "query" in items[0].sources and {c.id for c in items} >= {"13"}
