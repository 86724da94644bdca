"""Sliding-window reranker rows: training prefixes only, target = yes, candidates from the retriever."""

from __future__ import annotations

import numpy as np

from agent.rerank.prompt import SEQUENTIAL_REQUEST
from finetune.rerank_data.sequences import (
    MIN_HISTORY,
    build_sequence_rows,
    sample_windows,
)
from tests.fakes.finetune_data import cycle_split


class NextItemRetriever:
    """Scores the true next item of the cycle highest, then everything else by id."""

    def __init__(self, split):
        self.split = split
        self.next = {}
        for seq in split.train:
            for a, b in zip(seq[:-1], seq[1:]):
                self.next[int(a)] = int(b)
        self.calls = []

    def scores(self, system, history, split_name="test"):
        self.calls.append((system, split_name, history.tolist()))
        scores = -np.arange(self.split.n_items, dtype=np.float64)
        scores[self.next.get(int(history[-1]), 0)] = 100.0
        return scores


class PromptReranker:
    def pointwise_prompt(self, request, card, history=()):
        return f"{request} || {' ; '.join(history)} || {card}"


def test_windows_are_training_prefixes():
    split = cycle_split()
    for user, t in sample_windows(split.train, 200, seed=1):
        assert MIN_HISTORY <= t < len(split.train[user])


def test_rows_label_the_next_training_item_yes_and_never_read_held_out_items():
    split = cycle_split(n_items=20, n_users=30, length=9)
    retriever = NextItemRetriever(split)
    cards = {i: f"card {i}" for i in split.item_ids}
    titles = [f"T{i}" for i in range(split.n_items)]
    rows, card = build_sequence_rows(retriever, PromptReranker(), cards, titles, n_windows=40, depth=5,
                                     negatives=2, seed=0)
    assert card["windows_kept"] == 40 and card["rows"] == 120 and card["yes_rows"] == 40
    assert all(system == "hybrid" for system, _, _ in retriever.calls)
    # every history the retriever saw is a strict prefix of some user's training sequence
    for _, _, history in retriever.calls:
        assert any(len(seq) > len(history) and seq[: len(history)].tolist() == history for seq in split.train)
    yes = [r for r in rows if r["answer"] == "yes"]
    for row in yes:
        request, history, item_card = row["prompt"].split(" || ")
        assert request == SEQUENTIAL_REQUEST
        last_title = history.split(" ; ")[-1]
        assert item_card == f"card {retriever.next[int(last_title[1:])]}"


def test_windows_whose_target_is_not_a_candidate_are_dropped():
    split = cycle_split(n_items=20, n_users=10, length=9)

    class Blind(NextItemRetriever):
        def scores(self, system, history, split_name="test"):
            return np.zeros(self.split.n_items)  # candidates: the lowest ids only

    rows, card = build_sequence_rows(Blind(split), PromptReranker(), {}, [str(i) for i in range(20)], 30, depth=2)
    assert card["windows_kept"] + card["dropped_target_not_in_top"] == 30
    assert card["dropped_target_not_in_top"] > 0 and card["rows"] == len(rows)
