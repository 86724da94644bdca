"""`recsage eval` and `recsage recommend` on the real data: a text-only store of all of MovieLens."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REQUESTS = Path(__file__).resolve().parents[2] / "eval" / "data" / "requests.jsonl"


def _recsage(*args, env=None):
    return subprocess.run([str(BIN / "recsage"), *map(str, args)], capture_output=True, text=True, env=env)


@pytest.fixture(scope="session")
def movielens_store(tmp_path_factory, real_settings, shared_data):
    """MiniLM cards of all 9,742 movies (no posters, to keep CI short), in an embedded store."""
    store = tmp_path_factory.mktemp("ml_store")
    out = _recsage("ingest", "--movielens", shared_data / "ml-latest-small", "--store", store, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["items_in_store"] == 9742
    return store, shared_data / "ml-latest-small"


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

    from eval.protocol import make_split
    from eval.run_io import qrels_for

    split = make_split(ml)
    qrels = {u: q for u, q in qrels_for(split, "test").items() if u in run}
    ours = _recsage("eval", "--store", store, "--movielens", ml, "--system", "popularity", "--users", 100,
                    "--json", tmp_path / "pop.json")
    assert ours.returncode == 0
    recall = json.loads((tmp_path / "pop.json").read_text())["metrics"]["Recall@20"]
    assert recall == pytest.approx(evaluate(Qrels(qrels), Run(run), "recall@20"), abs=1e-6)


@pytest.mark.integration
@pytest.mark.parametrize("args, message", [
    (["--user", "999999"], "unknown user"),
    (["--history", "999999999"], "history is empty"),
    (["--user", "1", "-k", "0"], "positive"),
    (["--user", "1", "-k", "100000"], "larger than the catalog"),
    (["--user", "1", "--genre", "Cartoons", "--system", "content"], "unknown genre"),
    (["--user", "1", "--system", "hybrid"], "recsage train-retriever"),
])
def test_recommend_bad_input_exits_2(movielens_store, args, message):
    store, ml = movielens_store
    out = _recsage("recommend", "--store", store, "--movielens", ml, *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
def test_recommend_content_for_a_new_history_respects_filters(movielens_store):
    store, ml = movielens_store
    out = _recsage("recommend", "--store", store, "--movielens", ml, "--history", "1,3114,2355", "--system", "content",
                   "-k", 5, "--genre", "Animation", "--year-min", 1990, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    ids = [i["id"] for i in data["items"]]
    assert len(ids) == 5 and not {"1", "3114", "2355"} & set(ids)
    assert all("Animation" in i["genres"] and i["year"] >= 1990 for i in data["items"])
    assert data["reranked"] is False


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
