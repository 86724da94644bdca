"""ReDial parsing: joined messages, written-out titles, and which recommender turns are test cases
(expected turns worked out by hand in tests/fakes/redial.py)."""

import pytest

from agent.core.errors import InputError
from eval.conversations.dialogues import (
    clean_title,
    load_dialogues,
    parse_dialogue,
    recommender_turns,
)
from tests.fakes.redial import DIALOGUE, write_dialogues


def test_messages_of_one_speaker_are_joined_and_mentions_written_out():
    dialogue = parse_dialogue(DIALOGUE, line=1)
    assert [m.role for m in dialogue.messages] == ["assistant", "user", "assistant", "user", "assistant",
                                                   "user", "assistant"]
    assert dialogue.messages[0].content == "hi there The Matrix (1999) is great"
    assert dialogue.messages[1].content == "I like action like Heat (1995)"
    assert dialogue.messages[6].content == "Jaws (1975) and Heat (1995)"  # ReDial's double space collapsed
    assert dialogue.messages[2].movies == ("101", "103")


def test_turns_name_a_new_movie_after_the_seeker_spoke():
    turns = recommender_turns(parse_dialogue(DIALOGUE, line=1))
    # message 0 names 101 before the seeker spoke; messages 2, 4, 6 each name one new movie
    assert [(t.index, t.new, t.named_before) for t in turns] == [
        (2, ("103",), ("101", "102")),
        (4, ("104",), ("101", "102", "103")),
        (6, ("105",), ("101", "102", "103", "104")),
    ]
    first = turns[0]
    assert first.messages() == [{"role": "assistant", "content": "hi there The Matrix (1999) is great"},
                                {"role": "user", "content": "I like action like Heat (1995)"}]
    assert turns[2].seeker_text() == "I like action like Heat (1995) seen Toy Story (1995) ok"


def test_a_turn_naming_only_earlier_movies_is_not_a_case():
    row = {**DIALOGUE, "messages": [{"senderWorkerId": 1, "text": "I loved @101"},
                                    {"senderWorkerId": 2, "text": "@101 is great"}]}
    assert recommender_turns(parse_dialogue(row, line=1)) == []


def test_bad_lines_are_skipped_with_file_and_line(tmp_path):
    path = write_dialogues(tmp_path / "d.jsonl", bad_lines=("{not json", '{"messages": 3}'))
    dialogues, skipped = load_dialogues(path)
    assert [d.id for d in dialogues] == ["d1"] and dialogues[0].line == 3
    assert skipped[0].startswith(f"{path}:1: invalid JSON")
    assert skipped[1] == f"{path}:2: 'messages' must be a list of objects"


def test_limit_and_empty_files(tmp_path):
    path = tmp_path / "two.jsonl"
    path.write_text((write_dialogues(tmp_path / "one.jsonl").read_text()) * 2)
    assert len(load_dialogues(path, limit=1)[0]) == 1
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"messages": []}\n')
    with pytest.raises(InputError, match=r"holds no ReDial dialogue.*empty.jsonl:1: 'initiatorWorkerId'"):
        load_dialogues(empty)
    with pytest.raises(InputError, match="dialogue file not found"):
        load_dialogues(tmp_path / "missing.jsonl")


def test_clean_title():
    assert clean_title(" Cosmos  (2015) ") == "Cosmos (2015)"
