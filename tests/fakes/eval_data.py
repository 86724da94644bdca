"""Small hand-made interaction frames for the eval tests."""

from __future__ import annotations

import pandas as pd


def frame(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """(userId, movieId, timestamp) rows as an interaction frame with a dummy rating."""
    return pd.DataFrame(
        [(u, m, 3.0, t) for u, m, t in rows], columns=["userId", "movieId", "rating", "timestamp"]
    )
