"""Fusing a photo's OCR text search with its image vector's neighbours."""

from __future__ import annotations

import pytest

from agent.retrieval.photo import fuse_photo

TEXT = [("a", 3.0), ("b", 2.0), ("c", 1.0)]


def test_weight_zero_is_exactly_the_text_search():
    assert fuse_photo(TEXT, {"c": 0.9, "d": 0.1}, 0.0, 2) == TEXT[:2]


def test_image_scores_reorder_the_text_ranking():
    # z(text) over a,b,c,d with d floored at 1.0: a 1.51, b 0.30, c -0.90, d -0.90
    # z(image) with a,b floored at 0.1: a -0.58, b -0.58, c 1.73, d -0.58
    fused = dict(fuse_photo(TEXT, {"c": 0.9, "d": 0.1}, 1.0, 4))
    assert list(fused) == ["a", "c", "b", "d"]
    assert fused["a"] == pytest.approx(1.5076 - 0.5774, abs=1e-3)


def test_without_text_the_image_ranking_alone():
    assert [i for i, _ in fuse_photo([], {"x": 0.2, "y": 0.7}, 1.0, 5)] == ["y", "x"]
