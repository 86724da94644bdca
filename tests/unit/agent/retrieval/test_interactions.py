"""Protocol pieces on tiny hand-made data: loading, iterative k-core, leave-one-out order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.retrieval.interactions import (
    kcore,
    load_interactions,
    split_from_interactions,
)
from tests.fakes.eval_data import frame


def _pairs(df: pd.DataFrame) -> set[tuple[int, int]]:
    return set(zip(df["userId"], df["movieId"], strict=True))


def test_kcore_needs_more_than_one_pass():
    # k=2. Pass 1: every user has 2 items; item 30 has 1 rating -> dropped.
    # That leaves user 3 with one item, so a second pass must drop user 3 too.
    df = frame([(1, 10, 0), (1, 20, 0), (2, 10, 0), (2, 20, 0), (3, 20, 0), (3, 30, 0)])
    out = kcore(df, k=2)
    assert _pairs(out) == {(1, 10), (1, 20), (2, 10), (2, 20)}


def test_kcore_cascade_can_empty_everything():
    # a chain: each removal exposes the next; nothing satisfies 2-core in the end
    df = frame([(1, 10, 0), (1, 20, 0), (2, 20, 0), (2, 30, 0), (3, 30, 0), (3, 40, 0)])
    assert kcore(df, k=2).empty


def test_kcore_result_meets_k_and_ignores_row_order():
    rng = np.random.default_rng(0)
    rows = {(int(u), int(m)) for u, m in zip(rng.integers(0, 40, 600), rng.integers(0, 60, 600))}
    df = frame([(u, m, 0) for u, m in sorted(rows)])
    out = kcore(df, k=5)
    assert not out.empty
    assert out["userId"].value_counts().min() >= 5
    assert out["movieId"].value_counts().min() >= 5
    shuffled = kcore(df.sample(frac=1.0, random_state=1), k=5)
    assert _pairs(shuffled) == _pairs(out)


def test_split_orders_by_timestamp_then_numeric_item_id():
    # user 1: item 5 first, then 30, then 10 and 9 in the same second. Numeric id order puts 9
    # before 10 (string order would not), so 9 is validation and 10 is test.
    df = frame([(1, 10, 200), (1, 30, 100), (1, 9, 200), (1, 5, 50),
                (2, 30, 10), (2, 5, 10), (2, 9, 10)])
    split = split_from_interactions(df.sample(frac=1.0, random_state=0))
    assert split.item_ids == ["5", "9", "10", "30"]
    assert split.user_ids == ["1", "2"]

    def original(items):
        return [split.item_ids[i] for i in items]

    u1 = split.user_index["1"]
    assert original(split.train[u1]) == ["5", "30"]
    assert original([split.val[u1], split.test[u1]]) == ["9", "10"]
    u2 = split.user_index["2"]  # all in one second: pure item id order
    assert original(split.train[u2]) == ["5"]
    assert original([split.val[u2], split.test[u2]]) == ["9", "30"]


def test_history_for_validation_and_test():
    df = frame([(1, m, t) for t, m in enumerate([4, 3, 2, 1])])
    split = split_from_interactions(df)
    assert split.item_ids[split.target(0, "val")] == "2"
    assert split.item_ids[split.target(0, "test")] == "1"
    assert [split.item_ids[i] for i in split.history(0, "val")] == ["4", "3"]
    assert [split.item_ids[i] for i in split.history(0, "test")] == ["4", "3", "2"]
    with pytest.raises(ValueError, match="'val' or 'test'"):
        split.history(0, "train")


def test_index_maps_round_trip_and_stats():
    df = frame([(7, 100, 1), (7, 200, 2), (7, 300, 3), (9, 300, 1), (9, 100, 2), (9, 400, 3)])
    split = split_from_interactions(df)
    assert all(split.user_ids[i] == u for u, i in split.user_index.items())
    assert all(split.item_ids[i] == m for m, i in split.item_index.items())
    assert split.stats() == {"users": 2, "items": 4, "interactions": 6}


def test_users_too_short_for_leave_one_out_are_refused():
    with pytest.raises(ValueError, match="fewer than 3"):
        split_from_interactions(frame([(1, 1, 0), (1, 2, 1), (2, 1, 0), (2, 2, 1), (2, 3, 2)]))


def test_load_interactions_keeps_low_ratings_and_drops_unknown_movies(tmp_path):
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A (1990),Drama\n2,B (1991),Comedy\n")
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,1,0.5,10\n1,2,5.0,11\n1,3,4.0,12\n"
    )
    df = load_interactions(tmp_path)
    assert list(df["movieId"]) == [1, 2]  # 3 has no metadata; the 0.5 rating stays
    assert list(df.columns) == ["userId", "movieId", "rating", "timestamp"]


def test_load_interactions_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="ratings.csv"):
        load_interactions(tmp_path)

