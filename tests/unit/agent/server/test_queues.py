"""The server's model fronts (agent/server/queues.py) on fake models: concurrent explanations are one
explain call, reranking jobs keep their own results, batching off calls through, a chat turn's
explanations are deferred."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from agent.chat.tool_choice import ToolChooser
from agent.core.config import Settings
from agent.core.deferral import deferring
from agent.server.queues import ModelQueues


class FakeExplainer:
    def __init__(self):
        self.calls: list[list] = []
        self.last_seconds = {"generated": 1.0}

    def explain(self, evidences):
        self.calls.append(list(evidences))
        return [f"because {e}" for e in evidences]


class FakeReranker:
    def rerank(self, request_text, candidates, history_titles=()):
        # longest card first; the request's length as the score shows whose job this was
        return [(cid, float(len(request_text))) for cid, _ in sorted(candidates, key=lambda c: -len(c[1]))]


def in_threads(fn, args: list) -> list:
    barrier = threading.Barrier(len(args))

    def one(arg):
        barrier.wait()
        return fn(arg)

    with ThreadPoolExecutor(len(args)) as pool:
        return list(pool.map(one, args))


def test_concurrent_explanations_become_one_explain_call():
    queues = ModelQueues(Settings(batch_window_ms=300, batch_max_rows=64))
    model = FakeExplainer()
    front = queues.wrap("explainer", model)
    chats = [[f"c{c}i{i}" for i in range(3)] for c in range(5)]
    results = in_threads(front.explain, chats)
    assert results == [[f"because c{c}i{i}" for i in range(3)] for c in range(5)]
    assert len(model.calls) == 1 and len(model.calls[0]) == 15
    assert front.last_seconds == {"generated": 1.0}  # everything else is the model's own
    assert {k: queues.stats()["explain"][k] for k in ("forwards", "rows", "jobs")} == {"forwards": 1, "rows": 15, "jobs": 5}
    queues.close()


def test_reranking_jobs_each_get_their_own_ranking():
    queues = ModelQueues(Settings(batch_window_ms=50, batch_models=["explain", "rerank"]))
    front = queues.wrap("reranker", FakeReranker())
    jobs = [("a" * n, [("x", "short"), ("y", "a longer card")]) for n in (1, 2, 3)]
    results = in_threads(lambda job: front.rerank(*job), jobs)
    assert results == [[("y", float(n)), ("x", float(n))] for n in (1, 2, 3)]
    assert queues.stats()["rerank"]["jobs"] == 3
    queues.close()


class CountingChooser(ToolChooser):
    """Rules-free scores without a model: each message's own length, so a mix-up between chats shows."""

    def __init__(self):
        super().__init__(lambda: None, mode="llm")
        self.calls: list[int] = []

    def llm_scores_many(self, jobs):
        self.calls.append(len(jobs))
        return [{name: -float(len(message)) for name in tools} for tools, message, _, _ in jobs]


def test_concurrent_tool_choices_are_scored_together():
    queues = ModelQueues(Settings(batch_window_ms=300, batch_models=["explain", "tool_choice"]))
    chooser = queues.wrap_chooser(CountingChooser())
    tools = {"recommend": None, "search_catalog": None}
    results = in_threads(lambda m: chooser.llm_scores(tools, m), ["a", "bb", "ccc"])
    assert results == [{"recommend": -float(n), "search_catalog": -float(n)} for n in (1, 2, 3)]
    assert chooser.calls == [3]
    queues.close()


def test_without_tool_choice_in_batch_models_each_choice_scores_alone():
    chooser = ModelQueues(Settings()).wrap_chooser(CountingChooser())
    assert chooser.llm_scores({"recommend": None}, "a") == {"recommend": -1.0}
    assert chooser.calls == [1]


def test_only_the_models_named_in_batch_models_get_a_queue():
    queues = ModelQueues(Settings())  # the default: explanations only
    front = queues.wrap("reranker", FakeReranker())
    assert front.rerank("ab", [("x", "card")]) == [("x", 2.0)]
    assert list(queues.stats()) == []
    queues.wrap("explainer", FakeExplainer()).explain(["e"])
    assert list(queues.stats()) == ["explain"]
    queues.close()


def test_batching_off_calls_the_model_directly():
    queues = ModelQueues(Settings(serve_batching=False))
    model = FakeExplainer()
    front = queues.wrap("explainer", model)
    assert in_threads(front.explain, [["a"], ["b"]]) == [["because a"], ["because b"]]
    assert len(model.calls) == 2 and queues.stats() == {}
    assert queues.wrap("embedder", model) is model  # parts without a queue are left alone


def test_a_chat_turn_defers_its_explanations():
    queues = ModelQueues(Settings(batch_window_ms=0))
    model = FakeExplainer()
    front = queues.wrap("explainer", model)
    with deferring() as later:
        assert front.explain(["e1", "e2"]) == []  # nothing yet: the caller shows its items first
    assert model.calls == []
    assert list(later.run()) == [(["e1", "e2"], ["because e1", "because e2"])]
    assert model.calls == [["e1", "e2"]]
    queues.close()
