"""``recsage bench serve``: bursts of concurrent chats against a real uvicorn server over loopback.

Each chat is one streamed OpenAI-style request whose text comes from the request benchmark
(eval/data/requests.jsonl), so the burst asks for different things. A chat succeeds when the stream
ends with ``data: [DONE]``, carries no error and a non-empty answer. One warm-up chat first loads
the models, so the burst measures serving, not loading.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from agent.core.timing import Stopwatch, percentiles
from agent.server.io import BackgroundServer
from eval.bench import timed


def _request_texts(n: int) -> list[str]:
    from eval.requests import load_requests

    texts = [r.text for r in load_requests()]
    return [texts[i % len(texts)] for i in range(n)]


def stream_chat(base_url: str, text: str, timeout_s: float = 900.0) -> dict:
    """One streamed chat: time to the first answer token, total time, the answer, or the error."""
    import httpx

    body = {"model": "recsage", "stream": True, "messages": [{"role": "user", "content": text}]}
    clock = Stopwatch()

    def elapsed() -> float:
        return time.perf_counter() - clock.start

    first = None
    answer, done, error, items = [], False, None, 0
    try:
        with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=timeout_s) as response:
            if response.status_code != 200:
                response.read()
                return {"ok": False, "error": f"HTTP {response.status_code}: {response.text[:300]}",
                        "total_s": elapsed(), "first_token_s": None}
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"].get("message")
                    continue
                items = max(items, len((chunk.get("recsage") or {}).get("items") or []))
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    first = first or elapsed()
                    answer.append(piece)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    text_out = "".join(answer).strip()
    ok = done and error is None and bool(text_out)
    return {"ok": ok, "error": error or (None if ok else "stream ended without [DONE] or with an empty answer"),
            "total_s": elapsed(), "first_token_s": first, "answer": text_out[:200],
            "items": items}


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


def summarize(results: list[dict], concurrency: int, walls: list[float], warmup_s: float) -> dict:
    ok = [r for r in results if r["ok"]]
    total = percentiles([r["total_s"] for r in ok])
    first = percentiles([r["first_token_s"] for r in ok if r["first_token_s"] is not None])
    return {"concurrency": concurrency, "chats": len(results), "succeeded": len(ok),
            "with_items": sum(1 for r in ok if r.get("items")),
            "failed": len(results) - len(ok), "errors": [r["error"] for r in results if not r["ok"]],
            "total_s": {**total, "max": max((r["total_s"] for r in ok), default=None)},
            "first_token_s": first, "burst_wall_s": walls,
            "warmup_s": warmup_s, "per_chat": results}


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
    return summarize(results, concurrency, walls, warm["total_s"])
