"""The dialogue prior (agent/retrieval/dialogue_prior.py): counts from dialogues, hand-computed scores."""

import math

import numpy as np
import pytest

from agent.core.errors import InputError
from agent.retrieval.dialogue_prior import FILE_NAME, DialoguePrior, load_prior


def prior() -> DialoguePrior:
    p = DialoguePrior()
    p.add(["a", "b", "c"], recommended=["b", "c"])
    p.add(["a", "b"], recommended=["b"])
    p.add(["c", "d"], recommended=["d"])
    return p


def test_counts_per_dialogue():
    p = prior()
    assert p.dialogues == 3
    assert p.recommended == {"b": 2, "c": 1, "d": 1}
    assert p.mentions == {"a": 2, "b": 2, "c": 2, "d": 1}
    assert p.pairs["a"] == {"b": 2, "c": 1} and p.pairs["c"] == {"a": 1, "b": 1, "d": 1}


def test_a_title_named_twice_in_one_dialogue_counts_once():
    p = DialoguePrior()
    p.add(["a", "b", "a"], recommended=["b", "b"])
    assert p.mentions == {"a": 1, "b": 1} and p.recommended == {"b": 1} and p.pairs["a"] == {"b": 1}


def test_scores_are_mention_cosines_summed_over_seeds_and_log_recommendations():
    s = prior().scores(["a"], ["a", "b", "c", "d", "zz"])
    # b: 2 shared / sqrt(2 * 2) = 1; c: 1 / sqrt(2 * 2) = 0.5; d never named with a
    assert np.allclose(s["comention"], [0.0, 1.0, 0.5, 0.0, 0.0])
    assert np.allclose(s["recommended"], [0.0, math.log(3), math.log(2), math.log(2), 0.0])
    both = prior().scores(["a", "d"], ["c"])["comention"]
    assert np.allclose(both, [0.5 + 1 / math.sqrt(2 * 1)])


def test_no_seed_gives_no_comention():
    assert not prior().scores([], ["a", "b"])["comention"].any()


def test_save_and_load_round_trip(tmp_path):
    prior().save(tmp_path)
    loaded = load_prior(tmp_path)
    assert loaded.to_json() == prior().to_json()
    assert np.allclose(loaded.scores(["a"], ["b", "c"])["comention"], [1.0, 0.5])


def test_no_artefact_is_none_and_a_bad_one_says_to_retrain(tmp_path):
    assert load_prior(tmp_path) is None
    (tmp_path / FILE_NAME).write_text('{"format": 99}')
    with pytest.raises(InputError, match="train-dialogues"):
        load_prior(tmp_path)
    (tmp_path / FILE_NAME).write_text('{"format": 1}')
    with pytest.raises(InputError, match="train-dialogues"):
        load_prior(tmp_path)
