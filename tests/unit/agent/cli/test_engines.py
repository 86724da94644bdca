"""`recsage engines vllm` and `recsage bench rerank-server`: what they print and refuse, without vLLM."""

from __future__ import annotations

from click.testing import CliRunner

from agent.cli.main import cli
from tests.unit.agent.provision.test_engines import fake_install


def run(tmp_path, *args):
    config = tmp_path / "settings.toml"
    config.write_text(f'home = "{tmp_path}"\n[models]\nllm = "{tmp_path}"\n')
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_engines_vllm_prints_the_server_command_and_the_settings(tmp_path):
    env = fake_install(tmp_path)
    result = run(tmp_path, "engines", "vllm", "--port", "8123")
    assert result.exit_code == 0, result.output
    assert f"{env}/bin/python -m vllm.entrypoints.openai.api_server --model {tmp_path}" in result.stdout
    assert "--lora-modules rerank=" in result.stdout
    assert 'llm_backend = "openai"' in result.stderr and 'url = "http://127.0.0.1:8123/v1"' in result.stderr


def test_engines_vllm_without_the_engine_says_how_to_install(tmp_path):
    result = run(tmp_path, "engines", "vllm")
    assert result.exit_code == 2 and "recsage engines vllm --install" in result.output


def test_bench_rerank_server_needs_exactly_one_server(tmp_path):
    for extra in ([], ["--url", "http://127.0.0.1:9/v1", "--launch"]):
        result = run(tmp_path, "bench", "rerank-server", "--store", str(tmp_path), *extra)
        assert result.exit_code == 2 and "either --url" in result.output
