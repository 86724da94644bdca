"""``recsage bench serve`` on the fake recommender and chat agent over a real loopback server: every
chat counted, first token and stream start recorded, both modes in one run with their ratio."""

from __future__ import annotations

import math

from agent.core.config import Settings
from agent.server.app import create_app
from tests.fakes.server import FakeChatAgent, FakeRecommender


def test_bench_serve_counts_every_concurrent_chat(tmp_path, capsys):
    from eval.bench.serve import run_bench

    recommender = FakeRecommender(tmp_path)
    summary = run_bench(create_app(recommender, FakeChatAgent(recommender), Settings()), concurrency=6)
    assert summary["chats"] == summary["succeeded"] == summary["with_items"] == 6
    assert len(recommender.calls) == 7  # the warm-up chat and the burst
    for chat in summary["per_chat"]:  # the stream opens, then the items arrive, then it ends
        assert 0 < chat["opened_s"] <= chat["first_token_s"] <= chat["total_s"]
    assert 0 < summary["first_token_s"]["p50"] <= summary["total_s"]["p95"]


def test_both_modes_run_in_one_benchmark_with_their_ratio(tmp_path, capsys):
    from agent.cli.serve import print_serve_summary
    from eval.bench.serve import compare_modes

    asked = []

    def make_app(batching: bool):
        asked.append(batching)
        recommender = FakeRecommender(tmp_path)
        return create_app(recommender, FakeChatAgent(recommender), Settings(serve_batching=batching))

    summary = compare_modes(make_app, concurrency=3)
    assert asked == [False, True]  # serial (the queues off) first, then batched
    assert list(summary["modes"]) == ["serial", "batched"] and summary["chats"] == 6 and summary["failed"] == 0
    serial, batched = summary["modes"]["serial"], summary["modes"]["batched"]
    assert math.isclose(summary["ratio"]["total_s p95"], serial["total_s"]["p95"] / batched["total_s"]["p95"])
    assert math.isclose(summary["ratio"]["first_token_s p50"],
                        serial["first_token_s"]["p50"] / batched["first_token_s"]["p50"])
    print_serve_summary(summary)
    out = capsys.readouterr().out
    ratio = f"{summary['ratio']['total_s p95']:.2f}x"
    assert "ratio s÷b" in out and ratio in out


def test_one_mode_has_no_ratio(tmp_path):
    from eval.bench.serve import compare_modes

    def make_app(batching: bool):
        recommender = FakeRecommender(tmp_path)
        return create_app(recommender, FakeChatAgent(recommender), Settings(serve_batching=batching))

    summary = compare_modes(make_app, concurrency=2, modes=("batched",))
    assert list(summary["modes"]) == ["batched"] and "ratio" not in summary


def test_bench_serve_reports_failed_chats(tmp_path):
    from agent.server.io import BackgroundServer
    from eval.bench.serve import stream_chat, summarize

    recommender = FakeRecommender(tmp_path)
    app = create_app(recommender, FakeChatAgent(recommender), Settings(request_timeout_s=0.3))
    with BackgroundServer(app) as url:
        results = [stream_chat(url, "slow"), stream_chat(url, "fun")]
    summary = summarize(results, 2, [1.0], 0.0)
    assert summary["succeeded"] == 1 and "503" in summary["errors"][0]
