"""Every benchmark loop behind ``recsage bench ...``: each returns plain data (the CLI prints it) and
times with agent.core.timing (the one stopwatch and percentile rule)."""

from __future__ import annotations

from agent.core.timing import accumulate_seconds


def timed(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), wall seconds)``."""
    seconds: dict[str, float] = {}
    with accumulate_seconds(seconds, "call"):
        result = fn(*args, **kwargs)
    return result, seconds["call"]
