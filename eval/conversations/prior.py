"""Dialogues as the counts of a dialogue prior (agent.retrieval.dialogue_prior): the catalog ids
each dialogue names, and those its recommender named first. ``recsage train-dialogues``
(finetune/dialogues.py) saves the prior of a training file; eval/conversations/tune.py counts one on
part of the training dialogues to choose weights on the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.retrieval.dialogue_prior import DialoguePrior
from eval.conversations.dialogues import Dialogue
from eval.conversations.mapping import TitleMapper


def dialogue_ids(dialogue: Dialogue, mapper: TitleMapper) -> tuple[list[str], list[str]]:
    """(catalog ids the dialogue names, first mention order; those the recommender named first)."""
    named: list[str] = []
    recommended: list[str] = []
    for message in dialogue.messages:
        for redial_id in message.movies:
            item = mapper.map(dialogue.titles[redial_id]) if redial_id in dialogue.titles else None
            if item is None or item in named:
                continue
            named.append(item)
            if message.role == "assistant":
                recommended.append(item)
    return named, recommended


def build_prior(dialogues: Sequence[Dialogue], mapper: TitleMapper) -> DialoguePrior:
    prior = DialoguePrior()
    for dialogue in dialogues:
        prior.add(*dialogue_ids(dialogue, mapper))
    return prior
