"""Dialogues as prior counts (eval/conversations/prior.py) on the hand-made ReDial dialogue of tests/fakes/redial.py."""

from eval.conversations.dialogues import parse_dialogue
from eval.conversations.mapping import TitleMapper
from eval.conversations.prior import build_prior, dialogue_ids
from tests.fakes.redial import DIALOGUE, ITEMS


def test_ids_in_first_mention_order_and_who_named_them():
    # 101 Matrix (recommender, first), 102 Heat (seeker), 103 Toy Story (recommender), 104 maps to
    # nothing, 105 Jaws (recommender); 101 and 102 named again later do not count again
    named, recommended = dialogue_ids(parse_dialogue(DIALOGUE, 1), TitleMapper(ITEMS))
    assert named == ["1", "2", "3", "5"]
    assert recommended == ["1", "3", "5"]


def test_the_prior_counts_each_dialogue():
    dialogue = parse_dialogue(DIALOGUE, 1)
    prior = build_prior([dialogue, dialogue], TitleMapper(ITEMS))
    assert prior.dialogues == 2 and prior.recommended == {"1": 2, "3": 2, "5": 2}
    assert prior.pairs["2"] == {"1": 2, "3": 2, "5": 2}
