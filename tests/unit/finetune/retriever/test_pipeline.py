"""train_all end to end on a tiny MovieLens-shaped folder: artefacts, loaders, evaluation table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agent.retrieval.interactions import make_split
from finetune.retriever.sasrec_config import SasrecConfig
from finetune.retriever.pipeline import (
    evaluate_all,
    format_table,
    load_ease,
    load_fusion_weights,
    load_sasrec,
    main,
    train_all,
)

TINY = SasrecConfig(hidden=16, n_blocks=1, dropout=0.1, max_len=10, epochs=5, batch_size=8,
                    lr=1e-2, patience=5, threads=1)


def write_movielens(folder: Path, n_users: int = 15, n_items: int = 15, length: int = 8) -> Path:
    """Users walk a cycle of movies from different starts: every user and movie has >= 5 ratings."""
    rows = []
    for user in range(n_users):
        for t in range(length):
            rows.append((user + 1, 100 + (user + t) % n_items, 4.0, 1_000 + 10 * t))
    folder.mkdir(parents=True)
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    pd.DataFrame({"movieId": [100 + i for i in range(n_items)],
                  "title": [f"Movie {i} (2000)" for i in range(n_items)],
                  "genres": ["Drama"] * n_items}).to_csv(folder / "movies.csv", index=False)
    return folder


def test_train_all_saves_loadable_models_and_reports(tmp_path):
    data = write_movielens(tmp_path / "ml")
    out = tmp_path / "out"
    summary = train_all(data, out, seed=3, sasrec_config=TINY, ease_grid=(1.0, 10.0), progress=False)

    assert summary["split"]["users"] == 15
    assert summary["ease"]["l2"] in (1.0, 10.0)
    assert summary["sasrec"]["config"]["seed"] == 3
    assert {"ease_l2_selection", "ease_fit", "sasrec_wall", "fusion_selection", "total"} <= set(summary["timings_seconds"])
    assert json.loads((out / "summary.json").read_text()) == summary
    for path in ["ease/ease.safetensors", "ease/ease.json", "ease_refit/ease.safetensors",
                 "sasrec/model.safetensors", "sasrec/config.json", "sasrec/checkpoint/state.json",
                 "fusion.json"]:
        assert (out / path).exists(), path

    split = make_split(data)
    ease, sasrec = load_ease(out), load_sasrec(out)
    assert ease.config.l2 == summary["ease"]["l2"] and not ease.config.refit_on_val
    assert load_ease(out, refit=True).config.refit_on_val
    assert load_ease(out / "ease").config == ease.config  # a model folder works too
    assert sasrec.item_vectors().shape == (split.n_items, TINY.hidden + 1)
    weights = load_fusion_weights(out)
    assert weights["sasrec"] == 1.0 and weights == summary["fusion"]["weights"]

    results = evaluate_all(data, out, n_bootstrap=50)
    assert set(results) == {"val", "test"}
    assert set(results["test"]) == {"ease", "ease_refit", "sasrec", "fusion", "fusion_refit"}
    assert set(results["val"]) == {"ease", "sasrec", "fusion"}
    for rows in results.values():
        for metrics in rows.values():
            assert 0.0 <= metrics["NDCG@10"] <= 1.0
            assert metrics["NDCG@10_ci_low"] <= metrics["NDCG@10"] <= metrics["NDCG@10_ci_high"]
    # the validation metrics of the saved models are the ones train_all reported
    assert results["val"]["ease"]["NDCG@10"] == pytest.approx(summary["ease"]["val"]["NDCG@10"])
    assert results["val"]["sasrec"]["NDCG@10"] == pytest.approx(summary["sasrec"]["val"]["NDCG@10"])
    assert results["val"]["fusion"]["NDCG@10"] == pytest.approx(summary["fusion"]["val"]["NDCG@10"])
    table = format_table(results)
    assert "| test | fusion |" in table and "| val | sasrec |" in table


def test_cli_eval_only_prints_a_table(tmp_path, capsys):
    data = write_movielens(tmp_path / "ml")
    train_all(data, tmp_path / "out", sasrec_config=TINY, ease_grid=(5.0,), progress=False)
    assert main(["--data", str(data), "--out", str(tmp_path / "out"), "--eval-only"]) == 0
    assert "| test | sasrec |" in capsys.readouterr().out


def test_loaders_say_what_to_do_when_nothing_was_trained(tmp_path):
    with pytest.raises(FileNotFoundError, match="train"):
        load_sasrec(tmp_path)
    with pytest.raises(FileNotFoundError, match="train"):
        load_fusion_weights(tmp_path)


@pytest.mark.integration
def test_ease_on_the_real_split_beats_popularity(shared_data):
    """EASE fitted on training only must clearly beat popularity on validation (cheap: one l2)."""
    from agent.retrieval.popularity import popularity_scores
    from eval.metrics import evaluate
    from agent.retrieval.interactions import rank_users
    from finetune.retriever.ease import EaseConfig, train_ease

    movielens = shared_data / "ml-latest-small"
    split = make_split(movielens)
    model = train_ease(split, EaseConfig(l2=200.0))
    ease = evaluate(rank_users(split, model.scorer(), "val"), ks=(10,))
    pop = popularity_scores(split, "val")
    popularity = evaluate(rank_users(split, lambda u, h: pop, "val"), ks=(10,))
    assert ease["NDCG@10"] > 1.3 * popularity["NDCG@10"]
    assert np.all(np.diag(model.B) == 0)
