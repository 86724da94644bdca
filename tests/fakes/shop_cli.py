"""The recsage CLI on a generated shop's project file, in process: what the shop and replica
integration tests build their store with."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from agent.cli.main import cli


def recsage(project_file: Path, *args, expect: int = 0) -> str:
    """One in-process `recsage --project FILE ...` call; its stdout (stderr goes to the failure message)."""
    result = CliRunner().invoke(cli, ["--project", str(project_file), *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == expect, f"exit {result.exit_code}: {result.stderr[-3000:]}"
    return result.stdout


def recsage_json(project_file: Path, *args):
    return json.loads(recsage(project_file, *args, "--json"))


def build(shop) -> dict:
    """ingest + the fast retriever (EASE + content): the summaries of both."""
    ingest = recsage_json(shop.project_file, "ingest")
    train = recsage_json(shop.project_file, "train-retriever", "--models", "ease")
    return {"ingest": ingest, "train": train}
