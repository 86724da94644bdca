"""Popularity: counts of what is visible, never the targets being scored."""

from __future__ import annotations

from agent.retrieval.interactions import split_from_interactions
from agent.retrieval.popularity import popularity_scores
from tests.fakes.eval_data import frame


def test_popularity_counts_only_visible_history():
    # items 1..4; user 1: 1,2 | val 3 | test 4; user 2: 1,3 | val 2 | test 4
    df = frame([(1, 1, 0), (1, 2, 1), (1, 3, 2), (1, 4, 3), (2, 1, 0), (2, 3, 1), (2, 2, 2), (2, 4, 3)])
    split = split_from_interactions(df)
    counts = dict(zip(split.item_ids, popularity_scores(split, "val"), strict=True))
    assert counts == {"1": 2, "2": 1, "3": 1, "4": 0}
    counts = dict(zip(split.item_ids, popularity_scores(split, "test"), strict=True))
    assert counts == {"1": 2, "2": 2, "3": 2, "4": 0}  # validation items count, test never
