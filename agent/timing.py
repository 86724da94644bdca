"""Seconds per named stage: the one timer ingest and recommend report their stage timings with."""

from __future__ import annotations

import time
from contextlib import contextmanager


@contextmanager
def accumulate_seconds(seconds: dict[str, float], stage: str):
    """Add the wall time of the ``with`` block to ``seconds[stage]`` (stages may repeat)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start


class Stopwatch:
    """Seconds per named stage, plus the total since creation: ``with clock("retrieve"): ...``."""

    def __init__(self):
        self.start, self.seconds = time.perf_counter(), {}

    def __call__(self, stage: str):
        return accumulate_seconds(self.seconds, stage)

    def totals(self) -> dict[str, float]:
        return {name: round(s, 4) for name, s in {**self.seconds, "total": time.perf_counter() - self.start}.items()}
