"""The OpenAI-compatible server backend (agent/llm_server.py) against a fake server over real HTTP that
answers from the tiny llama (tests/fakes/openai_server.py): the protocol CI keeps; the real vLLM run is
tests/integration/test_vllm.py."""

from __future__ import annotations

import math

import pytest

from agent.core.config import LlmServer, Settings
from agent.core.errors import InputError
from agent.llm import LoadedLlm, continuation_logprobs
from agent.llm_server import (
    OpenAiClient,
    RemoteLlm,
    ServerError,
    label_scores,
    parse_top,
    uses_server,
)
from agent.rerank.reranker import LlmReranker
from tests.fakes.openai_server import FakeOpenAiServer
from tests.fakes.tiny_lm import plain_option_logprobs, tiny_llama

CARDS = ["Title: Alien (1979)\nGenres: Horror, Sci-Fi", "Title: Heat (1995)\nGenres: Crime",
         "Title: Up (2009)\nGenres: Animation, Comedy"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama()


@pytest.fixture
def serve(tiny):
    servers = []

    def start(**kwargs) -> FakeOpenAiServer:
        servers.append(FakeOpenAiServer(*tiny, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def remote(tiny, server: FakeOpenAiServer, model: str = "llm", **config) -> RemoteLlm:
    return RemoteLlm(OpenAiClient(LlmServer(url=server.url, **config)), tiny[1], model, 4096, 16_384)


def local_scores(tiny, request="something scary", history=("Jaws (1975)",)):
    return LlmReranker(model=tiny[0], tokenizer=tiny[1]).pointwise_scores(request, CARDS, history)


def test_reranker_through_the_server_reproduces_local_scores(tiny, serve):
    server = serve()
    reranker = LlmReranker(server=remote(tiny, server, model="rerank"))
    got = reranker.pointwise_scores("something scary", CARDS, ["Jaws (1975)"])
    assert got == pytest.approx(local_scores(tiny), abs=1e-4)
    assert reranker.last_stats["missing_labels"] == 0
    body = server.requests[-1]["body"]
    # the adapter asked for by its served name; exactly the four label ids; one token; token-id prompts
    tok = tiny[1]
    assert body["model"] == "rerank" and body["max_tokens"] == 1
    assert body["logprob_token_ids"] == [tok.encode(w, add_special_tokens=False)[0] for w in ("yes", "Yes", "no", "No")]
    assert len(body["prompt"]) == 3 and all(isinstance(t, int) for t in body["prompt"][0])
    prompt = reranker.pointwise_prompt("something scary", CARDS[0], ["Jaws (1975)"])
    assert body["prompt"][0] == tok(prompt, add_special_tokens=False)["input_ids"]


def test_server_that_ignores_the_extension_gets_the_counted_top_k_fallback(tiny, serve):
    server = serve(label_ids="ignored")
    llm = remote(tiny, server)
    reranker = LlmReranker(server=llm)
    got = reranker.pointwise_scores("something scary", CARDS, ["Jaws (1975)"])
    # the tiny model's ~100-token vocabulary: the top 20 cannot hold all four labels for all three cards
    assert llm.label_ids_extension is False
    assert server.requests[-1]["body"]["logprobs"] == 20 and "logprob_token_ids" not in server.requests[-1]["body"]
    assert 0 < reranker.last_stats["missing_labels"] <= 12
    assert len(got) == 3 and all(math.isfinite(s) for s in got)
    # later calls go straight to the fallback: one request per call
    n = len(server.requests)
    reranker.pointwise_scores("something scary", CARDS[:1])
    assert len(server.requests) == n + 1


def test_server_that_refuses_the_extension_is_asked_again_without_it(tiny, serve):
    server = serve(label_ids="refused")
    llm = remote(tiny, server)
    rows, missing = llm.label_logprobs([[5, 6, 7]], [10, 11])
    assert [r["body"].get("logprob_token_ids") for r in server.requests] == [[10, 11], None]
    assert llm.label_ids_extension is False and len(rows) == 1 and 0 <= missing <= 2


def test_label_scores_value_a_missing_label_at_the_smallest_returned():
    assert label_scores({1: -0.5, 2: -1.0}, [1, 3]) == ({1: -0.5, 3: -1.0}, 1)
    assert label_scores({}, [4]) == ({4: -math.inf}, 1)


def test_parse_top_reads_token_id_keys_and_token_text():
    assert parse_top({"token_id:7": -1.5, "token_id:9": -2.0}, lambda s: None) == {7: -1.5, 9: -2.0}
    assert parse_top({"yes": -0.1, "??": -3.0}, {"yes": 4}.get) == {4: -0.1}
    assert parse_top(None, lambda s: None) == {}


def test_generate_matches_greedy_local_generation(tiny, serve):
    server = serve()
    local = LoadedLlm(model=tiny[0], tokenizer=tiny[1])
    prompts = [local.chat("be brief", "hello"), local.chat("be brief", "a longer question here")]
    seen = {}
    got = remote(tiny, server).generate(prompts, max_new_tokens=6, stop=("\n\n",),
                                        on_token=lambda i, t: seen.setdefault(i, t))
    assert got == local.generate(prompts, max_new_tokens=6, stop=("\n\n",))
    assert seen == dict(enumerate(got))
    body = server.requests[-1]["body"]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 6 and body["stop"] == ["\n\n"]


def test_continuation_logprobs_match_the_plain_reference(tiny, serve):
    server = serve()
    local = LoadedLlm(model=tiny[0], tokenizer=tiny[1])
    options = ["search", "recommend", "no"]
    want = plain_option_logprobs(local, "pick a tool: ", options)
    assert remote(tiny, server).continuation_logprobs("pick a tool: ", options) == pytest.approx(want, abs=1e-4)
    # tool choice calls the module function: it hands a server client's scoring to the server
    assert continuation_logprobs(remote(tiny, server), "pick a tool: ", options) == pytest.approx(want, abs=1e-4)
    body = server.requests[-1]["body"]
    # one prompt per option token, shared starts once ("" is every option's first): 1 + 5 + 8 + 1 prompts
    assert len(body["prompt"]) == 1 + 5 + 8 + 1 and body["max_tokens"] == 1
    assert sorted(body["logprob_token_ids"]) == sorted({t for o in options for t in tiny[1].encode(o)})
    assert "prompt_logprobs" not in body
    # more distinct option tokens than one request may ask for: several requests, the same numbers
    many = ["abcdefghijklm", "nopqrstuvwxyz"]
    n = len(server.requests)
    assert remote(tiny, server).continuation_logprobs("pick: ", many) == pytest.approx(
        plain_option_logprobs(local, "pick: ", many), abs=1e-4)
    assert [len(r["body"]["logprob_token_ids"]) for r in server.requests[n:]] == [20, 6]


def test_api_key_comes_from_the_named_variable(tiny, serve, monkeypatch):
    server = serve(api_key="s3cret")
    monkeypatch.setenv("RECSAGE_TEST_KEY", "s3cret")
    assert remote(tiny, server, api_key_env="RECSAGE_TEST_KEY").generate(["hi"], max_new_tokens=1) is not None
    monkeypatch.delenv("RECSAGE_TEST_KEY")
    with pytest.raises(ServerError, match="RECSAGE_TEST_KEY is not set"):
        remote(tiny, server, api_key_env="RECSAGE_TEST_KEY")
    with pytest.raises(ServerError, match="401"):
        remote(tiny, server).generate(["hi"], max_new_tokens=1)


def test_unknown_model_and_unreachable_server_say_what_to_do(tiny, serve):
    server = serve()
    with pytest.raises(ServerError, match="404.*does not exist"):
        remote(tiny, server, model="nope").generate(["hi"], max_new_tokens=1)
    url = server.url
    server.close()
    gone = RemoteLlm(OpenAiClient(LlmServer(url=url, timeout_s=2)), tiny[1], "llm", 4096, 16_384)
    with pytest.raises(ServerError, match="did not answer.*llm_backend"):
        gone.generate(["hi"])


def test_settings_name_a_server_per_known_role():
    s = Settings(llm_backend="openai", llm_servers={"llm": {"url": "http://127.0.0.1:8000/v1"}})
    assert uses_server(s, "llm") and not uses_server(s, "llm_qwen05")
    assert not uses_server(s.with_overrides(llm_backend="local"), "llm")
    with pytest.raises(InputError, match="unknown LLM role"):
        Settings.from_mapping({"llm_servers": {"gpt": {"url": "http://h/v1"}}})
    with pytest.raises(InputError, match="llm_servers"):
        Settings.from_mapping({"llm_servers": {"llm": {"url": "127.0.0.1:8000"}}})


def test_llm_for_returns_the_server_client(tiny, serve, tmp_path):
    from agent.provision.models import llm_for

    tiny[0].save_pretrained(tmp_path)
    tiny[1].save_pretrained(tmp_path)
    server = serve()
    settings = Settings(llm_backend="openai", models={"llm": str(tmp_path)},
                        llm_servers={"llm": {"url": server.url, "model": "llm"}})
    llm = llm_for(settings, "rerank")
    assert isinstance(llm, RemoteLlm) and llm.model == "llm" and llm.context == 4096
    assert llm_for(settings, "explain") is llm  # one shared client per (role, server)
