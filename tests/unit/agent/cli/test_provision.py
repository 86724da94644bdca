"""``recsage models pull`` (which roles a pull provisions) and ``recsage bench llm`` (its input checks)."""

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.provision import models
from agent.provision.roles import ROLES


@pytest.fixture
def pulls(monkeypatch):
    """The role lists `recsage models pull` asks for (None: the default roles)."""
    asked = []

    def fake_pull(settings, roles=None, force=False, log=print):
        asked.append(roles)
        return dict.fromkeys(roles or ["llm"], "ready")

    monkeypatch.setattr(models, "pull", fake_pull)
    return asked


def _run(tmp_path, *args):
    return CliRunner().invoke(cli, list(args), env={"RECSAGE_HOME": str(tmp_path)})


@pytest.mark.parametrize("args, expected", [
    ([], None),  # the default roles: models.default_roles(), without the optional LLMs
    (["--role", "llm_qwen05"], ["llm_qwen05"]),
    (["--role", "llm_qwen05", "llm", "--role", "llm_qwen05"], ["llm", "llm_qwen05"]),
    (["--all"], list(ROLES)),
])
def test_pull_provisions_the_named_roles(tmp_path, pulls, args, expected):
    result = _run(tmp_path, "models", "pull", *args)
    assert result.exit_code == 0, result.output
    assert pulls == [expected]


def test_pull_refuses_an_unknown_role(tmp_path, pulls):
    result = _run(tmp_path, "models", "pull", "--role", "qwen")
    assert result.exit_code == 2 and "unknown role" in result.output
    assert pulls == []


@pytest.mark.parametrize("role, message", [
    ("whisper", "not LLM role"),
    ("llm_qwen15", "recsage models pull --role llm_qwen15"),
])
def test_bench_llm_refuses_a_role_it_cannot_measure(tmp_path, role, message):
    result = _run(tmp_path, "bench", "llm", "--role", role)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
