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


def percentiles(seconds, qs: tuple[int, ...] = (50, 95)) -> dict[str, float]:
    """``{"p50": ..., "p95": ...}`` of a list of timings (NaN for an empty list): the one percentile
    rule every benchmark reports with (numpy's linear interpolation)."""
    import numpy as np

    values = np.asarray(list(seconds), dtype=np.float64)
    if values.size == 0:
        return {f"p{q}": float("nan") for q in qs}
    return {f"p{q}": float(v) for q, v in zip(qs, np.percentile(values, qs), strict=True)}
