"""`recsage bench tasks`: the measurement over a scripted agent whose stage seconds are known, so
every row is hand-computed (numpy's linear-interpolation percentiles)."""

from __future__ import annotations

import pytest

from agent.core.config import Settings, load_settings
from agent.core.errors import InputError, RecsageError
from eval.bench.tasks import (
    QUALITY_FILE,
    bench_tasks,
    chat_turn,
    measure_profile,
    measure_request,
    models,
    profile_rows,
    profile_settings,
    request_texts,
)
from tests.fakes.tasks import scripted


def test_measure_profile_drops_the_warm_up_and_reads_the_recorded_stages():
    agent = scripted(Settings(), 3)
    samples = measure_profile(agent, ["toys", "horror", "space"])
    assert agent.sent == ["toys", "toys", "horror", "space"]  # the first text warms up, then every text
    assert samples["retrieval"] == pytest.approx([0.1, 0.2, 0.3])  # the ranked call's retrieve stage
    assert samples["rerank"] == pytest.approx([1.0, 2.0, 3.0])
    assert samples["explain"] == pytest.approx([0.2, 0.4, 0.6])  # the explained call's explain stage
    assert samples["recommend"] == pytest.approx([2.0, 3.0, 4.0])  # ... and its total
    assert samples["tool_choice"] == pytest.approx([0.3, 0.6, 0.9])  # the chat turn's stages
    assert samples["chat"] == pytest.approx([4.0, 5.0, 6.0])
    assert len(samples["understand"]) == 3 and all(0 <= s < 1 for s in samples["understand"])
    assert "understand_llm" not in samples  # rules only in this profile


def test_measure_request_makes_the_two_recommend_calls_of_the_rows():
    agent = scripted(Settings(), 0)
    measure_request(agent, "a funny animated movie about toys")
    ranked, full = agent.recommender.calls
    assert ranked == {"query": "a funny animated movie about toys", "k": 5, "explain": False, "rerank": True,
                      "understand": True}
    assert full == {"query": "a funny animated movie about toys", "k": 5, "explain": True, "understand": True}


def test_the_llm_reading_is_timed_when_the_profile_reads_with_the_llm(monkeypatch):
    from agent.chat import understand

    read = []
    monkeypatch.setattr(understand, "understand_with_settings",
                        lambda request, messages, catalog, settings: read.append(messages) or request)
    agent = scripted(Settings(understanding="llm"), 0)
    seconds = measure_request(agent, "something scary from the 80s")
    assert read == [[{"role": "user", "content": "something scary from the 80s"}]]
    assert {"understand", "understand_llm"} <= set(seconds)


def test_rows_hand_computed_with_budgets():
    samples = {"understand": [0.01, 0.03], "tool_choice": [0.3, 0.6, 0.9], "recommend": [2.0, 3.0, 4.0],
               "chat": [4.0, 5.0, 6.0]}
    rows = profile_rows("default", Settings(), samples)
    by_task = {r["task"]: r for r in rows}
    assert [r["task"] for r in rows] == ["request understanding", "tool choice (combined, list prompt)",
                                         "recommend -k 5 --explain", "chat turn"]
    # three values: p50 is the middle one; p95 sits 0.9 of the way from the second to the third
    assert by_task["recommend -k 5 --explain"] == {
        "profile": "default", "task": "recommend -k 5 --explain", "model": "rules + llm", "p50_s": 3.0,
        "p95_s": pytest.approx(3.9), "n": 3, "budget_s": 3.0, "within_budget": "yes"}
    chat = by_task["chat turn"]
    assert (chat["p50_s"], chat["p95_s"], chat["budget_s"], chat["within_budget"]) == (5.0, pytest.approx(5.9), 4.0, "no")
    understand = by_task["request understanding"]
    assert understand["p50_s"] == pytest.approx(0.02) and understand["p95_s"] == pytest.approx(0.029)
    assert understand["budget_s"] is None and understand["within_budget"] is None
    assert by_task["tool choice (combined, list prompt)"]["model"] == "llm + rules"


def test_models_name_the_role_of_each_task():
    default = models(Settings())
    assert default["tool_choice"] == "llm + rules" and default["rerank"] == "llm" and default["understand"] == "rules"
    assert default["chat"] == "rules + llm"
    quality = models(load_settings(QUALITY_FILE))
    assert quality["tool_choice"] == "llm_qwen05 + rules"
    assert quality["chat"] == "rules + llm_qwen05 + llm"  # Qwen picks the tool, SmolLM2 reranks and explains
    assert quality["recommend"] == "rules + llm"  # recommend does not choose tools
    reading = models(Settings(understanding="llm", task_models={"understand": "llm_qwen15"},
                              chat_tool_choice="rules", chat_explain=False))
    assert reading["understand_llm"] == "rules + llm_qwen15" and reading["tool_choice"] == "rules"
    assert reading["chat"] == "rules + llm_qwen15 + llm"
    assert reading["recommend"] == "rules + llm_qwen15 + llm"


def test_bench_tasks_runs_every_profile_on_the_same_requests():
    built = []

    def build(name, settings):
        def make():
            built.append(name)
            return scripted(settings, 2)
        return make

    quality = load_settings(QUALITY_FILE)
    result = bench_tasks({"default": build("default", Settings()), "quality": build("quality", quality)},
                         ["toys", "horror"])
    assert built == ["default", "quality"]
    assert result["requests"] == ["toys", "horror"] and "not counted" in result["warmup"]
    assert result["profiles"]["quality"]["task_models"]["tool_choice"] == "llm_qwen05"
    assert result["profiles"]["quality"]["chat_tool_prompt"] == "turns"
    rows = {(r["profile"], r["task"]): r for r in result["rows"]}
    assert rows[("quality", "tool choice (combined, turns prompt)")]["model"] == "llm_qwen05 + rules"
    assert rows[("default", "chat turn")]["p50_s"] == pytest.approx(4.5)  # totals 4 and 5
    assert all(r["n"] == 2 for r in result["rows"])
    assert len(result["rows"]) == 2 * 7  # seven tasks per profile, no LLM reading


def test_a_chat_turn_without_done_is_an_error():
    class Silent:
        def session(self):
            return self

        def send(self, text):
            yield {"type": "token", "text": "hi"}

    with pytest.raises(RecsageError, match="without a done event"):
        chat_turn(Silent(), "toys")


def test_request_texts_are_the_first_n_of_the_chat_requests(tmp_path):
    path = tmp_path / "requests.jsonl"
    rows = [f'{{"id": "r{i}", "text": "request number {i}", "split": "val", "relevance": {{"genres_any": ["Comedy"]}}}}'
            for i in range(3)]
    path.write_text("\n".join(rows) + "\n")
    assert request_texts(2, path) == ["request number 0", "request number 1"]
    with pytest.raises(InputError, match="more than the 3 requests"):
        request_texts(4, path)
    with pytest.raises(InputError, match="at least 1"):
        request_texts(0, path)
    assert len(request_texts(10)) == 10  # the bundled eval/data/chat_requests.jsonl


def test_profile_settings_put_the_files_keys_over_the_settings_in_effect(tmp_path):
    base = Settings(threads=1, rerank_depth=10, chat_tool_prompt="list")
    quality = profile_settings(base, QUALITY_FILE)
    assert (quality.chat_tool_prompt, quality.chat_tool_choice) == ("turns", "combined")
    assert quality.task_models["tool_choice"] == "llm_qwen05" and quality.task_models["explain"] == "llm"
    assert (quality.threads, quality.rerank_depth) == (1, 10)  # kept from the invocation
    bad = tmp_path / "bad.toml"
    bad.write_text('chat_tool_prompt = "poem"\n')
    with pytest.raises(InputError, match="chat_tool_prompt"):
        profile_settings(base, bad)
    with pytest.raises(InputError, match="not found"):
        profile_settings(base, tmp_path / "missing.toml")
