"""The `--engine local|ray` flags that `ingest`, `eval` and `finetune data` share: the same names on
all three, Ray flags refused without `--engine ray`, and a missing Ray named with its install
command before any data is read."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from agent.cli.main import cli

FLAGS = ("--engine", "--ray-address", "--ray-actors", "--ray-actor-cpus")


def commands(tmp_path) -> dict[str, list[str]]:
    """Each batch command with arguments that name data that does not exist: the engine check
    must come first, or these would fail on the data instead."""
    data = ["--movielens", str(tmp_path / "nowhere"), "--store", str(tmp_path / "store")]
    return {"ingest": ["ingest", *data], "eval": ["eval", *data, "--system", "rerank"],
            "finetune data": ["finetune", "data", *data, "--sequential", "5"]}


@pytest.mark.parametrize("command", ["ingest", "eval", "finetune data"])
def test_every_batch_command_has_the_same_ray_flags(command):
    result = CliRunner().invoke(cli, [*command.split(), "--help"])
    assert result.exit_code == 0 and all(flag in result.stdout for flag in FLAGS)
    assert "extra recsage[ray]" in " ".join(result.stdout.split())  # help wraps lines


@pytest.mark.parametrize("command", ["ingest", "eval", "finetune data"])
def test_ray_flags_without_the_ray_engine_are_refused(tmp_path, command):
    result = CliRunner().invoke(cli, [*commands(tmp_path)[command], "--ray-actors", "2", "--ray-actor-cpus", "2"])
    assert result.exit_code == 2 and "--ray-actors, --ray-actor-cpus go with --engine ray" in result.stderr


@pytest.mark.parametrize("command", ["ingest", "eval", "finetune data"])
def test_without_ray_installed_each_command_says_how_to_install_it(tmp_path, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(cli, [*commands(tmp_path)[command], "--engine", "ray"])
    assert result.exit_code == 2 and "pip install 'recsage[ray]'" in result.stderr


def test_a_shuffled_candidate_order_is_refused_on_ray_before_any_data_is_read(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'recsage[ray]'")
    result = CliRunner().invoke(cli, [*commands(tmp_path)["eval"], "--engine", "ray", "--candidate-order", "shuffled"])
    assert result.exit_code == 2 and "--engine local" in result.stderr
