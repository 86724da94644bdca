"""train_retriever end to end on a tiny MovieLens-shaped project and store: artefacts, vectors, weights,
and what a rerun does when the interactions log grows or the items change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from agent.core.config import Settings
from agent.core.project import movielens_project
from agent.ingest.store import Store
from agent.retrieval.ease import load_ease
from agent.retrieval.interactions import make_split
from agent.retrieval.retriever import HYBRID_FILE, SASREC_COLLECTION, Retriever
from agent.retrieval.sasrec import load_sasrec
from finetune.retriever.pipeline import (
    SUMMARY_FILE,
    WARM_EPOCHS,
    train_models,
    train_retriever,
)
from finetune.retriever.sasrec_config import SasrecConfig

TINY = SasrecConfig(hidden=16, n_blocks=1, dropout=0.1, max_len=10, epochs=5, batch_size=8,
                    lr=1e-2, patience=5, threads=1)


def write_movielens(folder: Path, n_users: int = 15, n_items: int = 15, length: int = 8) -> Path:
    """Users walk a cycle of movies from different starts: every user and movie has >= 5 ratings."""
    rows = []
    for user in range(n_users):
        for t in range(length):
            rows.append((user + 1, 100 + (user + t) % n_items, 4.0, 1_000 + 10 * t))
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    pd.DataFrame({"movieId": [100 + i for i in range(n_items)],
                  "title": [f"Movie {i} (2000)" for i in range(n_items)],
                  "genres": ["Drama"] * n_items}).to_csv(folder / "movies.csv", index=False)
    return folder


def write_store(store_dir: Path, item_ids: list[str]) -> None:
    """Content vectors and metadata for every item, as ingest would write them."""
    vectors = np.random.default_rng(0).normal(size=(len(item_ids), 4)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    Store(store_dir).upsert(item_ids, vectors, ["card"] * len(item_ids),
                            [{"title": f"Movie {i}", "genres": json.dumps(["Drama"]), "year": 2000} for i in item_ids])


def project_of(tmp_path: Path, **sizes):
    return movielens_project(write_movielens(tmp_path / "ml", **sizes), store=tmp_path / "store")


def test_train_models_saves_loadable_models_and_reports(tmp_path):
    split = make_split(project_of(tmp_path))
    out = tmp_path / "out"
    summary = train_models(split, out, seed=3, sasrec_config=TINY, ease_grid=(1.0, 10.0), progress=False)

    assert summary["split"]["users"] == 15
    assert summary["ease"]["l2"] in (1.0, 10.0)
    assert summary["sasrec"]["config"]["seed"] == 3
    assert {"ease_l2_selection", "ease_fit", "sasrec_wall", "total"} <= set(summary["timings_seconds"])
    for path in ["ease/ease.safetensors", "ease/ease.json", "sasrec/model.safetensors", "sasrec/config.json",
                 "sasrec/checkpoint/state.json"]:
        assert (out / path).exists(), path
    ease, sasrec = load_ease(out), load_sasrec(out)
    assert ease.config["l2"] == summary["ease"]["l2"] and not ease.config["refit_on_val"]
    assert load_ease(out / "ease").config == ease.config  # a model folder works too
    assert sasrec.item_vectors().shape == (split.n_items, TINY.hidden + 1)
    assert sasrec.info["best_val"] == summary["sasrec"]["val"]


def test_train_retriever_stores_vectors_and_hybrid_weights_that_serving_reads(tmp_path):
    project = project_of(tmp_path)
    split = make_split(project)
    store_dir = tmp_path / "store"
    write_store(store_dir, split.item_ids)
    settings = Settings(home=tmp_path)
    summary = train_retriever(project, settings, seed=1, progress=False, sasrec_config=TINY)

    folder = store_dir / "retriever"
    hybrid = json.loads((folder / HYBRID_FILE).read_text())
    assert hybrid["weights"]["sasrec"] == 1.0 and set(hybrid["weights"]) == {"sasrec", "ease", "content"}
    assert summary["hybrid"] == {"weights": hybrid["weights"], "val": hybrid["val"]}
    assert json.loads((folder / SUMMARY_FILE).read_text()) == summary
    assert {"split", "chroma_sasrec_vectors", "hybrid_selection", "train_retriever_total"} <= set(summary["timings_seconds"])
    assert summary["sasrec"]["config"]["seed"] == 1 and not (folder / "fusion.json").exists()

    retriever = Retriever(Store(store_dir), store_dir, split, settings)
    stored = retriever.store.collection(SASREC_COLLECTION, create=False).get(ids=split.item_ids, include=["embeddings"])
    np.testing.assert_allclose(np.asarray(stored["embeddings"]), load_sasrec(folder).item_vectors(), rtol=1e-6)
    history = split.history(0, "test")
    items, _ = retriever.recommend(history, k=3, system="hybrid")
    assert len(items) == 3 and not {c.id for c in items} & {split.item_ids[i] for i in history}
    assert set(items[0].sources) == {n for n, w in hybrid["weights"].items() if w}
    assert summary["plan"]["sasrec"] == "scratch" and summary["models"] == ["ease", "sasrec"]
    assert summary["data"]["interactions"] == 15 * 8 and summary["data"]["items"] == 15


def trained(tmp_path: Path, **kwargs):
    project = project_of(tmp_path)
    write_store(tmp_path / "store", make_split(project).item_ids)
    settings = Settings(home=tmp_path)
    return project, settings, train_retriever(project, settings, seed=1, progress=False, sasrec_config=TINY, **kwargs)


def test_a_rerun_on_the_same_data_reuses_the_models(tmp_path, capsys):
    project, settings, first = trained(tmp_path)
    weights = tmp_path / "store" / "retriever" / "sasrec" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = train_retriever(project, settings, seed=1, progress=True, sasrec_config=TINY)
    assert again["plan"]["action"] == "unchanged" and weights.stat().st_mtime_ns == before
    assert again["hybrid"] == first["hybrid"]
    assert "unchanged: the same 120 interactions and 15 items" in capsys.readouterr().err
    forced = train_retriever(project, settings, seed=1, progress=False, sasrec_config=TINY, force=True)
    assert forced["plan"]["sasrec"] == "scratch" and weights.stat().st_mtime_ns != before


def test_new_interactions_warm_start_sasrec_and_new_items_start_over(tmp_path):
    project, settings, first = trained(tmp_path)
    # two more events per user (the next two movies of each cycle), later than all others
    write_movielens(tmp_path / "ml", length=10)
    grown = train_retriever(project, settings, seed=1, progress=False, sasrec_config=TINY)
    best = first["sasrec"]["best_epoch"]
    assert grown["plan"]["sasrec"] == "warm"
    assert grown["plan"]["message"] == (f"resumed SASRec from epoch {best}: 30 new interactions, same 15 items; "
                                        "refitted EASE")
    log = load_sasrec(tmp_path / "store" / "retriever").info["log"]
    assert log[0]["epoch"] == 0 and "warm_start" in log[0]  # the old weights ranked on the new validation first
    assert grown["sasrec"]["epochs_run"] <= min(TINY.epochs, WARM_EPOCHS)
    assert grown["data"]["interactions"] == 150 and not (tmp_path / "store" / "retriever" / "pending.json").exists()

    write_movielens(tmp_path / "ml", n_items=16, length=10)  # a 16th movie: every item vector means another item
    write_store(tmp_path / "store", make_split(project).item_ids)
    rebuilt = train_retriever(project, settings, seed=1, progress=False, sasrec_config=TINY)
    assert rebuilt["plan"]["sasrec"] == "scratch" and "items changed (15 before, 16 now)" in rebuilt["plan"]["message"]


def test_fast_mode_trains_ease_content_and_popularity_and_serves_without_sasrec(tmp_path):
    project, settings, summary = trained(tmp_path, models=("ease",))
    folder = tmp_path / "store" / "retriever"
    hybrid = json.loads((folder / HYBRID_FILE).read_text())
    assert list(hybrid["weights"]) == ["ease", "content", "popularity"] and hybrid["weights"]["content"] == 1.0
    assert "sasrec" not in summary and not (folder / "sasrec").exists()
    assert SASREC_COLLECTION not in Store(tmp_path / "store").item_collections()

    split = make_split(project)
    retriever = Retriever(Store(tmp_path / "store"), tmp_path / "store", split, settings)
    items, _ = retriever.recommend(split.history(0, "test"), k=3, system="hybrid")
    assert len(items) == 3 and set(items[0].sources) == {n for n, w in hybrid["weights"].items() if w}
