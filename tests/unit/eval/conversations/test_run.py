"""Cases from the hand-made dialogue, and the table over them (expected values by hand)."""

import pytest

from agent.chat.catalog import ChatCatalog
from agent.core.errors import InputError
from eval.conversations.dialogues import parse_dialogue
from eval.conversations.mapping import TitleMapper
from eval.conversations.run import build_cases, conversation_report, evaluate_systems
from tests.fakes.redial import DIALOGUE, ITEMS, interactions, write_dialogues


def test_cases_hold_turns_with_a_target_in_the_catalog():
    cases, counts = build_cases([parse_dialogue(DIALOGUE, line=1)], TitleMapper(ITEMS))
    # turn 4 names only Unknown Film (2001), which no item matches: not a case
    assert [(c.turn.index, c.named, c.targets) for c in cases] == [(2, ("1", "2"), ("3",)),
                                                                  (6, ("1", "2", "3"), ("5",))]
    assert (counts["turns"], counts["cases"], counts["targets"]) == (3, 2, 2)
    assert (counts["mapping"]["mentions"], counts["mapping"]["mentions_mapped"]) == (3, 2)


def test_systems_rank_the_same_cases_and_are_paired_against_earlier_baselines():
    cases, _ = build_cases([parse_dialogue(DIALOGUE, line=1)], TitleMapper(ITEMS))
    lists = {2: ["1", "6", "3"], 6: ["5"]}  # case 1: 3 is second once 1 is removed; case 2: 5 first
    result = evaluate_systems({"popularity": lambda case, depth: ["6"],
                               "mine": lambda case, depth: lists[case.turn.index]}, cases, ks=(1, 10))
    mine = result["systems"]["mine"]
    assert mine["Recall@1"]["mean"] == 0.5 and mine["Recall@10"]["mean"] == 1.0
    assert result["systems"]["popularity"]["Recall@10"]["mean"] == 0.0
    assert result["paired"]["mine"]["popularity"]["Recall@10"]["mean_diff"] == 1.0
    assert "popularity" not in result["paired"]  # nothing before it to compare with
    assert mine["mean_list_length"] == 2.0


def test_report_runs_baselines_on_a_file(tmp_path):
    path = write_dialogues(tmp_path / "d.jsonl", bad_lines=("{oops",))
    catalog = ChatCatalog(ITEMS, interactions())
    data = conversation_report(path, None, ["popularity", "item-cosine", "bm25"], catalog, show=False)
    assert data["cases"] == 2 and data["skipped_lines"][0].startswith(f"{path}:1:")
    # popularity without named movies: case 1 -> 3 first; case 2 -> 5 first (3, 1, 2 named)
    assert data["systems"]["popularity"]["Recall@1"]["mean"] == 1.0
    # item-cosine: case 1 -> 3 (1.22) before 5 (0.5); case 2 -> 5 (0.5 + 0 + 0) is the only one left
    assert data["systems"]["item-cosine"]["Recall@1"]["mean"] == 1.0
    # bm25 matches Heat, The Matrix (named) and Toy Story (named in case 2, by "seen Toy Story"): no target
    assert data["systems"]["bm25"]["Recall@50"]["mean"] == 0.0
    assert set(data["paired"]) == {"item-cosine", "bm25"}


def test_report_needs_interactions_for_popularity(tmp_path):
    path = write_dialogues(tmp_path / "d.jsonl")
    with pytest.raises(InputError, match="interactions log"):
        conversation_report(path, None, ["popularity"], ChatCatalog(ITEMS), show=False)


def test_report_refuses_a_catalog_that_maps_nothing(tmp_path):
    path = write_dialogues(tmp_path / "d.jsonl")
    with pytest.raises(InputError, match="no recommender turn names a movie that maps"):
        conversation_report(path, None, ["bm25"], ChatCatalog(ITEMS[-1:]), show=False)
