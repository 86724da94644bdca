"""CLI contract: JSON shapes, exit code 2 with a one-line message on bad input, never a traceback."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from agent.cli.main import cli


def _run(*args, home=None):
    result = CliRunner().invoke(cli, list(args), env={"RECSAGE_HOME": str(home)} if home else None)
    return result


@pytest.mark.parametrize("args, message", [
    (["ingest", "--store", "/tmp/x"], "no recsage.toml here: run `recsage init`"),
    (["ingest", "--movielens", "d"], "--movielens DIR needs --store DIR"),
    (["ingest", "--catalog", "a.jsonl", "--posters", "p", "--store", "/tmp/x"], "--posters goes with --movielens"),
    (["ingest", "--catalog", "a.jsonl", "--movielens", "d", "--store", "/tmp/x"], "exactly one of"),
    (["ingest", "--catalog", "/no/such.jsonl", "--store", "/tmp/x"], "catalog file not found"),
    (["ingest", "--movielens", "/no/such/dir", "--store", "/tmp/x"], "movies.csv"),
    (["ingest", "--catalog", "x.jsonl"], "--store DIR"),
    (["search", "toys", "--store", "/tmp/x", "-k", "0"], "-k must be a positive"),
    (["search", "  ", "--store", "/tmp/x"], "empty"),
    (["models", "pull", "nonsense"], "unknown role"),
    (["bench", "ingest", "--movielens", "d", "--variants", "two"], "--variants"),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recsage.toml here
    result = _run(*args, home=tmp_path)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_models_list_before_pull(tmp_path):
    result = _run("models", "list", "--json", home=tmp_path)
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["ready"] for r in rows] == [False] * len(rows)
    assert all("recsage models pull" in r["detail"] for r in rows if r["role"] != "clip")


def test_search_without_models_says_what_to_do(tmp_path):
    result = _run("search", "toys", "--store", str(tmp_path / "s"), home=tmp_path)
    assert result.exit_code == 2
    assert "recsage models pull" in result.output


@pytest.mark.integration
def test_plugins_lists_builtins_through_entry_points():
    out = subprocess.run([sys.executable, "-m", "agent.cli.main", "plugins", "--json"], capture_output=True,
                         text=True, check=True)
    data = json.loads(out.stdout)
    names = {r["name"] for r in data["registered"]}
    assert {"minilm", "ocr", "clip", "whisper"} <= names
    assert {"minilm_text", "whisper_audio", "image_converters"} <= set(data["plugins"])
