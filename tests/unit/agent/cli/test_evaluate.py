"""`recsage eval` and `recsage eval-requests` on the real data: a text-only store of all of MovieLens
(the shared `movielens_store` fixture in tests/conftest.py; `recommend` is tested in test_recommend.py)."""

import json

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from eval.requests import DEFAULT_REQUESTS as REQUESTS
from tests.conftest import run_recsage as _recsage


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
                       "--out", json_file, "--compare", run_file)
    assert content.returncode == 0, content.stderr
    report = json.loads(json_file.read_text())
    assert report["users"] == 100 and report["protocol"]["users"] == 610
    assert 0 <= report["ndcg@10_ci95"][0] <= report["metrics"]["NDCG@10"] <= report["ndcg@10_ci95"][1]
    assert report["compare"]["users"] == 100 and "p_value" in report["compare"]

    from ranx import Qrels, Run, evaluate

    from agent.core.project import movielens_project
    from agent.retrieval.interactions import make_split
    from eval.run_io import qrels_for

    split = make_split(movielens_project(ml, store=store))
    qrels = {u: q for u, q in qrels_for(split, "test").items() if u in run}
    ours = _recsage("eval", "--store", store, "--movielens", ml, "--system", "popularity", "--users", 100,
                    "--json")
    assert ours.returncode == 0
    recall = json.loads(ours.stdout)["metrics"]["Recall@20"]
    assert recall == pytest.approx(evaluate(Qrels(qrels), Run(run), "recall@20"), abs=1e-6)


@pytest.mark.integration
def test_eval_requests_bm25_and_hybrid(movielens_store, tmp_path):
    store, ml = movielens_store
    out_file = tmp_path / "requests.json"
    out = _recsage("eval-requests", "--store", store, "--movielens", ml, "--requests", REQUESTS,
                   "--split", "val", "--system", "bm25", "--system", "hybrid", "--out", out_file)
    assert out.returncode == 0, out.stderr
    results = json.loads(out_file.read_text())
    assert set(results) == {"bm25", "hybrid"}
    for result in results.values():
        assert result["n_requests"] == 30
        assert 0 < result["metrics"]["P@10"]["mean"] <= 1
    assert "NDCG@10 vs bm25" in out.stdout
    bad = _recsage("eval-requests", "--store", store, "--movielens", ml, "--requests", REQUESTS,
                   "--system", "sasrec")
    assert bad.returncode == 2 and "unknown request system" in bad.stderr


@pytest.mark.parametrize("args, message", [
    (["eval-requests", "--store", "/tmp/x", "--system", "sasrec"], "unknown request system"),
    (["eval", "--store", "/tmp/x", "--system", "bm25"], "unknown system"),
    (["eval", "--store", "/tmp/x", "--system", "ease", "--system", "sasrec", "--run", "r.json"], "single --system"),
])
def test_eval_bad_input_exits_2(args, message, tmp_path):
    result = CliRunner().invoke(cli, args, env={"RECSAGE_HOME": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_eval_no_longer_takes_requests():
    """The request benchmark is its own command; `eval --requests` is a usage error, not a silent switch."""
    result = CliRunner().invoke(cli, ["eval", "--store", "/tmp/x", "--requests", str(REQUESTS)])
    assert result.exit_code == 2 and "No such option" in result.output


def _tiny_movielens(folder):
    """tests/fakes/redial.py's catalog and log as a MovieLens folder."""
    from tests.fakes.redial import HISTORIES, ITEMS

    folder.mkdir()
    movies = ["movieId,title,genres"] + [f'{i.id},"{i.title} ({i.year})",{"|".join(i.facets["genres"])}' for i in ITEMS]
    ratings = ["userId,movieId,rating,timestamp"] + [f"{user[1:]},{item},4.0,{n}"
                                                     for user, items in HISTORIES.items() for n, item in enumerate(items)]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    (folder / "ratings.csv").write_text("\n".join(ratings) + "\n")
    return folder


def test_eval_conversations_baselines_as_json(tmp_path):
    from tests.fakes.redial import write_dialogues

    ml = _tiny_movielens(tmp_path / "ml")
    dialogues = write_dialogues(tmp_path / "d.jsonl")
    args = ["eval", "conversations", "--movielens", str(ml), "--store", str(tmp_path / "store"),
            "--dialogues", str(dialogues), "--system", "popularity", "--system", "item-cosine"]
    result = CliRunner().invoke(cli, [*args, "--json"], env={"RECSAGE_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["turns"], data["cases"], data["targets"]) == (3, 2, 2)
    assert list(data["systems"]) == ["popularity", "item-cosine"]
    assert data["systems"]["item-cosine"]["Recall@1"]["mean"] == 1.0
    assert "popularity" in data["paired"]["item-cosine"]
    text = CliRunner().invoke(cli, args, env={"RECSAGE_HOME": str(tmp_path)})
    assert text.exit_code == 0 and "item-cosine - popularity Recall@10: +0.000" in text.output


@pytest.mark.parametrize("extra, message", [
    (["--system", "sasrec"], "unknown conversation system"),
    (["--dialogues", "/nonexistent/d.jsonl"], "dialogue file not found"),
])
def test_eval_conversations_bad_input_exits_2(extra, message, tmp_path):
    from tests.fakes.redial import write_dialogues

    ml = _tiny_movielens(tmp_path / "ml")
    args = ["eval", "conversations", "--movielens", str(ml), "--store", str(tmp_path / "store"),
            "--dialogues", str(write_dialogues(tmp_path / "d.jsonl")), *extra]
    result = CliRunner().invoke(cli, args, env={"RECSAGE_HOME": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
