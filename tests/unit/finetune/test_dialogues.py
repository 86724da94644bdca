"""``recsage train-dialogues`` (finetune/dialogues.py) on the hand-made ReDial file of tests/fakes/redial.py."""

import json

from finetune.dialogues import train_dialogue_prior
from tests.fakes.redial import DIALOGUE, ITEMS


def test_the_prior_is_written_under_the_artefacts(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text((json.dumps(DIALOGUE) + "\n") * 2 + "not json\n", encoding="utf-8")
    summary = train_dialogue_prior(path, ITEMS, {}, tmp_path / "art")
    assert summary["dialogues"] == 2 and len(summary["skipped_lines"]) == 1 and summary["movies"] == 4 and summary["pairs"] == 6
    data = json.loads((tmp_path / "art" / "dialogues" / "dialogue_prior.json").read_text())
    assert data["recommended"] == {"1": 2, "3": 2, "5": 2} and data["pairs"]["2"] == {"1": 2, "3": 2, "5": 2}
