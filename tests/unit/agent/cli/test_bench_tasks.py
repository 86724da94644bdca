"""`recsage bench tasks` on the command line: one agent per profile, the quality file over the
settings in effect, bad input exits 2 before any model loads (scripted agents, no models)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from agent.cli.main import cli
from tests.fakes.tasks import scripted


def _invoke(monkeypatch, *args):
    from agent.cli import chat

    built = []

    def build_agent(ctx, explain=None, tool_choice=None, config=None):
        built.append(config)
        return scripted(config, 2)

    monkeypatch.setattr(chat, "build_agent", build_agent)
    return CliRunner().invoke(cli, ["--threads", "1", "bench", "tasks", "--requests", "2", *args]), built


def test_quality_alone_adds_the_built_in_profile(monkeypatch):
    result, built = _invoke(monkeypatch, "--quality", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [c.task_models["tool_choice"] for c in built] == ["llm", "llm_qwen05"]
    assert built[1].threads == 1  # the invocation's settings stay under the quality file's keys
    assert {r["profile"] for r in data["rows"]} == {"default", "quality"}
    assert len(data["requests"]) == 2 and all(r["n"] == 2 for r in data["rows"])


def test_a_quality_file_and_the_table(monkeypatch, tmp_path):
    quality = tmp_path / "q.toml"
    quality.write_text('chat_tool_choice = "rules"\n')
    result, built = _invoke(monkeypatch, "--quality", str(quality))
    assert result.exit_code == 0, result.output
    assert [c.chat_tool_choice for c in built] == ["combined", "rules"]
    assert "latency per model and task" in result.output and "not counted" in result.output
    assert "chat turn" in result.output and "tool choice (rules" in result.output


def test_bad_input_exits_2_before_any_model(monkeypatch, tmp_path):
    for args, message in ((["--requests", "0"], "at least 1"), (["--requests", "99"], "more than the 24"),
                          (["--quality", str(tmp_path / "none.toml")], "not found")):
        from agent.cli import chat

        monkeypatch.setattr(chat, "build_agent", lambda *a, **k: (_ for _ in ()).throw(AssertionError("built")))
        result = CliRunner().invoke(cli, ["bench", "tasks", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
