"""Held-out metrics of the image encoder, on hand-made vectors."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.image_encoder.evaluate import (
    auc,
    auc_summary,
    heldout_report,
    own_ranks,
    recall_at,
)


def test_auc_counts_correctly_ordered_pairs():
    # positives 0.35, 0.8; negatives 0.1, 0.4: 3 of the 4 (pos, neg) pairs are ordered right
    assert auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert auc(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(0.5)  # a tie is half right
    assert auc(np.array([1.0, 2.0]), np.array([1, 1])) is None


def test_own_ranks_and_recall():
    queries = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    ranks = own_ranks(queries, targets)
    # query 1 scores target 0 first; query 2 ties targets 1 and 2, and a tie counts against it
    assert list(ranks) == [0, 2, 1]
    assert recall_at(ranks, 1) == pytest.approx(1 / 3)
    assert recall_at(ranks, 2) == pytest.approx(2 / 3)


def test_a_constant_score_per_label_has_macro_auc_one_half():
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=bool)
    summary = auc_summary(np.tile([0.7, 0.2], (4, 1)), truth)
    assert summary["macro_auc"] == pytest.approx(0.5)
    assert summary["labels_scored"] == 2


def test_heldout_report_on_perfect_image_vectors():
    cards = np.eye(4, dtype=np.float32)
    heldout = np.array([False, False, True, True])
    labels = [("x",), ("y",), ("x",), ("y",)]
    report = heldout_report(cards.copy(), cards, heldout, labels, None, ["x", "y"])
    assert report["retrieval"]["recall@1"] == 1.0 and report["retrieval"]["chance@10"] == 1.0
    assert report["labels"]["frequency baseline"]["macro_auc"] == pytest.approx(0.5)
