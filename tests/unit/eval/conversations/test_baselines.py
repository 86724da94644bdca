"""The three baselines on the hand-made catalog and log of tests/fakes/redial.py (scores by hand)."""

import math

import pytest

from eval.conversations.baselines import (
    Case,
    ItemCosine,
    bm25_ranker,
    build_baselines,
    popularity_ranker,
)
from eval.conversations.dialogues import parse_dialogue, recommender_turns
from tests.fakes.redial import DIALOGUE, ITEMS, interactions


@pytest.fixture
def turns():
    return recommender_turns(parse_dialogue(DIALOGUE, line=1))


def test_popularity_ranks_by_events_and_leaves_room_for_named_items(turns):
    rank = popularity_ranker(interactions())
    # events: 3 has 3; 1, 2 and 5 have 2 (natural id order); 6 has 1
    assert rank(Case(turns[0], ("1", "2"), ("3",)), 2) == ["3", "1", "2", "5"]
    assert rank(Case(turns[0], (), ("3",)), 10) == ["3", "1", "2", "5", "6"]


def test_item_cosine_sums_cosines_to_the_named_movies(turns):
    cosine = ItemCosine(interactions())
    scores = dict(zip(cosine.ids, cosine.scores(["1", "2"]), strict=True))
    # users: 1 {u1,u2}, 2 {u1,u4}, 3 {u1,u2,u5}, 5 {u3,u4}, 6 {u3}
    assert scores["3"] == pytest.approx(2 / math.sqrt(6) + 1 / math.sqrt(6))
    assert scores["5"] == pytest.approx(0 + 1 / 2)
    assert scores["6"] == 0
    ranked = cosine(Case(turns[0], ("1", "2"), ("3",)), 10)
    assert ranked == ["1", "2", "3", "5"]  # 1: 1 + 1/2, 2: 1/2 + 1; no co-occurrence with 6: left out
    assert cosine(Case(turns[0], (), ("3",)), 10) == []  # nothing named yet
    assert cosine(Case(turns[0], ("99",), ("3",)), 10) == []  # a named movie outside the log


def test_bm25_reads_the_seeker_words_so_far(turns):
    rank = bm25_ranker(ITEMS)
    # "I like action like Heat (1995)": Heat matches heat and action, The Matrix only action
    assert rank(Case(turns[0], ("1", "2"), ("3",)), 10) == ["2", "1"]
    assert rank(Case(turns[0], (), ("3",)), 1) == ["2"]


def test_build_baselines_by_name():
    assert set(build_baselines(["bm25", "item-cosine"], ITEMS, interactions())) == {"bm25", "item-cosine"}
