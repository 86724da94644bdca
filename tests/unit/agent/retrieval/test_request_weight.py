"""The history's weight beside a request, and the fusion of the two rankings (hand-computed)."""

import math

import pytest

from agent.retrieval.request_weight import content_words, fuse_rows, request_weight


@pytest.mark.parametrize(("titles", "facets", "bounds", "words", "expected"), [
    (0, 0, 0, 0, 0.0),          # no request: the history alone
    (0, 0, 0, 1, 1 / 2),        # one vague word: s = 1, as much as the history
    (1, 0, 0, 0, 2 / 3),        # one named title: s = 2
    (0, 1, 0, 3, 5 / 6),        # "a funny animated movie about toys": 3 words + Animation
    (0, 0, 2, 0, 4 / 5),        # "from the 80s": two year bounds
    (2, 1, 1, 4, 12 / 13),      # two titles, a facet, a year, four words: s = 4 + 4 + 4
])
def test_request_weight_follows_how_specific_the_request_is(titles, facets, bounds, words, expected):
    assert request_weight(titles, facets, bounds, words) == pytest.approx(expected)


def test_a_more_specific_request_never_weighs_less():
    weights = [request_weight(words=n) for n in range(10)]
    assert weights == sorted(weights) and weights[-1] < 1


def test_content_words_drop_stop_words_and_movie():
    assert content_words("a funny animated movie about toys") == 3  # funny, animated, toys
    assert content_words("") == 0


REQUEST = [{"id": "a", "score": 3.0}, {"id": "b", "score": 1.0}]
HISTORY = [{"id": "b", "score": 2.0}, {"id": "c", "score": 0.0}]
# union a, b, c; request [3, 1, floor 1] -> z [sqrt2, -sqrt2/2, -sqrt2/2];
# history [floor 0, 2, 0] -> z [-sqrt2/2, sqrt2, -sqrt2/2]
HIGH = 3 / 4 * math.sqrt(2) - 1 / 4 * math.sqrt(2) / 2   # 5 sqrt2 / 8
LOW = -3 / 4 * math.sqrt(2) / 2 + 1 / 4 * math.sqrt(2)   # -sqrt2 / 8


def test_a_specific_request_leads_and_the_history_follows():
    rows = fuse_rows(REQUEST, HISTORY, 0.75, pool=3)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert [r["score"] for r in rows] == pytest.approx([HIGH, LOW, -math.sqrt(2) / 2], abs=1e-6)


def test_a_vague_request_leans_on_the_history():
    rows = fuse_rows(REQUEST, HISTORY, 0.25, pool=2)
    assert [r["id"] for r in rows] == ["b", "a"]
    assert [r["score"] for r in rows] == pytest.approx([HIGH, LOW], abs=1e-6)


def test_one_side_missing_or_weighted_out_returns_the_other():
    assert fuse_rows(REQUEST, [], 0.5, pool=5) == REQUEST
    assert fuse_rows([], HISTORY, 0.5, pool=5) == HISTORY
    assert fuse_rows(REQUEST, HISTORY, 0.0, pool=1) == HISTORY[:1]
