"""Retrieval from a structured request (agent/retrieval/request_fusion.py) on a four-item fake retriever."""

from types import SimpleNamespace

import numpy as np

from agent.retrieval.dialogue_prior import DialoguePrior
from agent.retrieval.fusion import zscore
from agent.retrieval.request_fusion import (
    TEXT_ONLY_WEIGHTS,
    WEIGHTS,
    fuse,
    request_parts,
    text_scores,
)

IDS = ["a", "b", "c", "d"]


class FakeRetriever:
    split = SimpleNamespace(item_ids=IDS, item_index={i: n for n, i in enumerate(IDS)}, n_items=4)

    def popularity(self, split_name):
        return np.array([10.0, 0.0, 3.0, 1.0])

    def hybrid(self, history):
        # item n scores 1 for every history item next to it: enough to tell the two histories apart
        s = np.zeros(4)
        for h in history:
            s[max(h - 1, 0)] += 1
            s[min(h + 1, 3)] += 1
        return s, {}


def prior() -> DialoguePrior:
    p = DialoguePrior()
    p.add(["a", "c"], recommended=["c"])
    return p


def test_text_scores_fill_items_not_hit_with_the_lowest_hit():
    assert text_scores([("b", 2.0), ("d", 0.5), ("zz", 9.0)], FakeRetriever.split.item_index, 4).tolist() == \
        [0.5, 2.0, 0.5, 0.5]


def test_parts_from_liked_and_mentioned_titles_with_the_prior():
    liked, mentioned = np.array([0]), np.array([0, 3])
    parts = request_parts(FakeRetriever(), liked, None, mentioned, prior(), ["a", "d"])
    assert set(parts) == {"popularity", "hybrid", "context", "comention", "recommended"}
    known = np.array([0, 3])
    assert np.allclose(parts["hybrid"], zscore(np.array([1.0, 1, 0, 0]), liked))
    assert np.allclose(parts["context"], zscore(np.array([1.0, 1, 1, 0]), mentioned))
    # c was named with a in one dialogue of each: cosine 1 / sqrt(1 * 1); d was never named with a
    assert np.allclose(parts["comention"], zscore(np.array([0.0, 0, 1, 0]), known))
    assert np.allclose(parts["recommended"], zscore(np.log1p(np.array([0.0, 0, 1, 0])), known))
    assert np.allclose(parts["popularity"], zscore(np.log1p([10.0, 0, 3, 1]), known))


def test_a_words_only_request_takes_no_prior_and_the_text_weights():
    text = np.array([0.0, 3.0, 1.0, 0.0])
    parts = request_parts(FakeRetriever(), np.zeros(0, dtype=np.int64), text, None, prior(), [])
    assert set(parts) == {"popularity", "text"}
    expected = TEXT_ONLY_WEIGHTS["text"] * parts["text"] + TEXT_ONLY_WEIGHTS["popularity"] * parts["popularity"]
    assert np.allclose(fuse(parts), expected)
    assert int(np.argmax(fuse(parts))) == 1


def test_titles_take_the_title_weights():
    parts = {"context": np.array([1.0, 0.0]), "recommended": np.array([0.0, 2.0]), "text": np.array([5.0, 0.0])}
    expected = [WEIGHTS["context"] + WEIGHTS["text"] * 5, WEIGHTS["recommended"] * 2]
    assert np.allclose(fuse(parts), expected)
    assert np.allclose(fuse(parts, {"text": 1.0}), [5.0, 0.0])
