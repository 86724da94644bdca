"""`recsage eval` on the real data: a text-only store of all of MovieLens (the shared
`movielens_store` fixture in tests/conftest.py; `recommend` is tested in test_recommend_cli.py)."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_recsage as _recsage

REQUESTS = Path(__file__).resolve().parents[2] / "eval" / "data" / "requests.jsonl"


@pytest.mark.integration
def test_eval_popularity_and_content_rows_with_run_file(movielens_store, tmp_path):
    store, ml = movielens_store
    run_file, json_file = tmp_path / "pop.run.json", tmp_path / "content.json"
    pop = _recsage("eval", "--store", store, "--movielens", ml, "--system", "popularity", "--users", 100,
                   "--run", run_file)
    assert pop.returncode == 0, pop.stderr
    assert "'users': 610, 'items': 3650, 'interactions': 90274" in pop.stderr
    run = json.loads(run_file.read_text())
    assert len(run) == 100 and all(len(items) == 50 for items in run.values())
    content = _recsage("eval", "--store", store, "--movielens", ml, "--system", "content", "--users", 100,
                       "--json", json_file, "--compare", run_file)
    assert content.returncode == 0, content.stderr
    report = json.loads(json_file.read_text())
    assert report["users"] == 100 and report["protocol"]["users"] == 610
    assert 0 <= report["ndcg@10_ci95"][0] <= report["metrics"]["NDCG@10"] <= report["ndcg@10_ci95"][1]
    assert report["compare"]["users"] == 100 and "p_value" in report["compare"]

    from ranx import Qrels, Run, evaluate

    from agent.retrieval.interactions import make_split
    from eval.run_io import qrels_for

    split = make_split(ml)
    qrels = {u: q for u, q in qrels_for(split, "test").items() if u in run}
    ours = _recsage("eval", "--store", store, "--movielens", ml, "--system", "popularity", "--users", 100,
                    "--json", tmp_path / "pop.json")
    assert ours.returncode == 0
    recall = json.loads((tmp_path / "pop.json").read_text())["metrics"]["Recall@20"]
    assert recall == pytest.approx(evaluate(Qrels(qrels), Run(run), "recall@20"), abs=1e-6)


@pytest.mark.integration
def test_eval_requests_bm25_and_hybrid(movielens_store, tmp_path):
    store, ml = movielens_store
    out_file = tmp_path / "requests.json"
    out = _recsage("eval", "--store", store, "--movielens", ml, "--requests", REQUESTS,
                   "--split", "val", "--system", "bm25", "--system", "hybrid", "--json", out_file)
    assert out.returncode == 0, out.stderr
    results = json.loads(out_file.read_text())
    assert set(results) == {"bm25", "hybrid"}
    for result in results.values():
        assert result["n_requests"] == 30
        assert 0 < result["metrics"]["P@10"]["mean"] <= 1
    assert "NDCG@10 vs bm25" in out.stdout
    bad = _recsage("eval", "--store", store, "--movielens", ml, "--requests", REQUESTS,
                   "--system", "sasrec")
    assert bad.returncode == 2 and "unknown request system" in bad.stderr
