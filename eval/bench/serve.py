"""``recsage bench serve``: bursts of concurrent chats against a real uvicorn server over loopback.

Each chat is one streamed OpenAI-style request whose text comes from the request benchmark
(eval/data/requests.jsonl), so the burst asks for different things. A chat succeeds when the stream
ends with ``data: [DONE]``, carries no error and a non-empty answer. One warm-up chat first loads
the models, so the burst measures serving, not loading.

Per chat it records when the stream opened (the tool was chosen: the server sends its first chunk
after the turn's first event), the first token (the first chunk carrying answer content: the
ranked items, or the answer's first words) and the end. :func:`compare_modes` runs the same burst
on a server with the model queues off (``serve_batching = false``: each chat's model calls in turn)
and on (shared forward passes), for the ratio.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agent.core.timing import Stopwatch, percentiles
from agent.server.io import BackgroundServer
from eval.bench import timed

MODES = {"serial": False, "batched": True}
"""Bench mode -> the serve_batching setting it runs with."""


def _request_texts(n: int) -> list[str]:
    from eval.requests import load_requests

    texts = [r.text for r in load_requests()]
    return [texts[i % len(texts)] for i in range(n)]


class _ChatClock:
    """Seconds since the chat was sent at which each milestone was first seen."""

    def __init__(self):
        self.clock, self.marks = Stopwatch(), {}

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter() - self.clock.start)

    def elapsed(self) -> float:
        return time.perf_counter() - self.clock.start


def _read_chunk(chunk: dict, clock: _ChatClock, answer: list[str], got: dict) -> None:
    """Record one OpenAI chunk: its items (the ranking), its content, the turn's stage timings (the
    finish chunk's)."""
    extra = chunk.get("recsage") or {}
    got["items"] = max(got["items"], len(extra.get("items") or []))
    got["timings"] = extra.get("timings") or got["timings"]
    piece = chunk["choices"][0]["delta"].get("content")
    if extra.get("items") or piece:
        clock.mark("first_token")
    if piece:
        answer.append(piece)


def stream_chat(base_url: str, text: str, timeout_s: float = 900.0) -> dict:
    """One streamed chat: seconds to the stream's start, to the first answer content, and in total;
    the answer, or the error."""
    import httpx

    body = {"model": "recsage", "stream": True, "messages": [{"role": "user", "content": text}]}
    clock = _ChatClock()
    answer, done, error, got = [], False, None, {"items": 0, "timings": {}}
    try:
        with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=timeout_s) as response:
            if response.status_code != 200:
                response.read()
                return {"ok": False, "error": f"HTTP {response.status_code}: {response.text[:300]}",
                        "total_s": clock.elapsed(), "first_token_s": None, "opened_s": None}
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                clock.mark("opened")
                data = line[len("data: "):]
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"].get("message")
                    continue
                _read_chunk(chunk, clock, answer, got)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    text_out = "".join(answer).strip()
    ok = done and error is None and bool(text_out)
    return {"ok": ok, "error": error or (None if ok else "stream ended without [DONE] or with an empty answer"),
            "total_s": clock.elapsed(), "first_token_s": clock.marks.get("first_token"),
            "opened_s": clock.marks.get("opened"), "answer": text_out[:200], **got}


def _burst(base_url: str, texts: list[str]) -> tuple[list[dict], float]:
    """All chats released at once (a barrier), each on its own thread and connection."""
    barrier = threading.Barrier(len(texts))

    def one(text: str) -> dict:
        barrier.wait()
        return stream_chat(base_url, text)

    def run_all() -> list[dict]:
        with ThreadPoolExecutor(max_workers=len(texts)) as pool:
            return list(pool.map(one, texts))

    return timed(run_all)


def _spread(results: list[dict], key: str) -> dict:
    return percentiles([r[key] for r in results if r.get(key) is not None])


def _stages(results: list[dict]) -> dict[str, dict]:
    """p50/p95 seconds of each stage of the server's turns (tool choice, tool: retrieval and
    reranking, explain), as their done events reported them."""
    names = sorted({name for r in results for name in r.get("timings", {}) if name != "total"})
    return {name: percentiles([r["timings"][name] for r in results if name in r.get("timings", {})])
            for name in names}


def summarize(results: list[dict], concurrency: int, walls: list[float], warmup_s: float,
              queues: dict | None = None) -> dict:
    ok = [r for r in results if r["ok"]]
    return {"concurrency": concurrency, "chats": len(results), "succeeded": len(ok),
            "with_items": sum(1 for r in ok if r.get("items")),
            "failed": len(results) - len(ok), "errors": [r["error"] for r in results if not r["ok"]],
            "total_s": {**_spread(ok, "total_s"), "max": max((r["total_s"] for r in ok), default=None)},
            "first_token_s": _spread(ok, "first_token_s"), "opened_s": _spread(ok, "opened_s"),
            "stages_s": _stages(ok), "burst_wall_s": walls, "warmup_s": warmup_s, "queues": queues or {}, "per_chat": results}


def run_bench(app, concurrency: int, rounds: int = 1) -> dict:
    """Warm up with one chat, then ``rounds`` bursts of ``concurrency`` chats; returns :func:`summarize`'s summary."""
    texts = _request_texts(concurrency * rounds + 1)
    with BackgroundServer(app) as url:
        warm = stream_chat(url, texts[0])
        if not warm["ok"]:
            from agent.core.errors import RecsageError

            raise RecsageError(f"the warm-up chat failed: {warm['error']}")
        results, walls = [], []
        for r in range(rounds):
            burst, wall = _burst(url, texts[1 + r * concurrency: 1 + (r + 1) * concurrency])
            results += burst
            walls.append(wall)
    queues = getattr(getattr(app.state, "recsage", None), "queues", None)
    return summarize(results, concurrency, walls, warm["total_s"], queues.stats() if queues else None)


def compare_modes(make_app: Callable[[bool], object], concurrency: int, rounds: int = 1,
                  modes: tuple[str, ...] = tuple(MODES)) -> dict:
    """The same bursts on a server per mode (``make_app(serve_batching)``), one after the other;
    ``ratio``: serial over batched for each latency, when both ran."""
    runs = {mode: run_bench(make_app(MODES[mode]), concurrency, rounds) for mode in modes}
    summary: dict = {"concurrency": concurrency, "modes": runs}
    if {"serial", "batched"} <= set(runs):
        summary["ratio"] = {f"{key} {q}": _ratio(runs["serial"][key][q], runs["batched"][key][q])
                            for key in ("first_token_s", "total_s") for q in ("p50", "p95")}
    summary["failed"] = sum(run["failed"] for run in runs.values())
    summary["chats"] = sum(run["chats"] for run in runs.values())
    summary["errors"] = [e for run in runs.values() for e in run["errors"]]
    return summary


def _ratio(serial: float | None, batched: float | None) -> float | None:
    if serial is None or batched is None or not batched or math.isnan(serial) or math.isnan(batched):
        return None
    return serial / batched
