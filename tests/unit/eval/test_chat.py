"""Tool-choice accuracy on scripted turns (eval/chat.py), with a chat agent's tools, catalog and
chooser (rules mode: no LLM needed), and the turns file checks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from agent.chat.catalog import ChatCatalog
from agent.chat.tool_choice import ToolChooser
from agent.chat.tools import load_tools
from agent.core.errors import InputError
from agent.ingest.catalog import Item
from eval.chat import DEFAULT_TURNS, load_turns, tool_choice_accuracy


def agent():
    items = [Item(id="1", title="Heat", year=1995, facets={"genres": ("Crime",)})]
    return SimpleNamespace(tools=load_tools(), catalog=ChatCatalog(items), chooser=ToolChooser(None, mode="rules"))


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_accuracy_counts_the_turns_whose_pick_is_the_intended_tool(tmp_path):
    turns = load_turns(write(tmp_path / "t.jsonl", [
        {"id": "a", "message": "search for movies about sharks", "tool": "search_catalog"},
        {"id": "b", "message": "only after 2000", "tool": "filter_items", "shown": ["Heat (1995)"]},
        {"id": "c", "message": "hello there", "tool": "item_details"},  # no trigger: rules default to recommend
    ]))
    out = tool_choice_accuracy(agent(), turns, ["rules"])
    rules = out["modes"]["rules"]
    assert out["n_turns"] == 3 and rules["accuracy"] == pytest.approx(2 / 3)
    assert rules["always_registered"] is True
    assert rules["errors"] == [{"id": "c", "message": "hello there", "expected": "item_details", "picked": "recommend"}]


def test_unknown_modes_and_unregistered_tools_are_input_errors(tmp_path):
    turns = load_turns(write(tmp_path / "t.jsonl", [{"id": "a", "message": "hi", "tool": "teleport"}]))
    with pytest.raises(InputError, match="not registered"):
        tool_choice_accuracy(agent(), turns, ["rules"])
    with pytest.raises(InputError, match="unknown tool-choice mode"):
        tool_choice_accuracy(agent(), turns, ["oracle"])


def test_the_bundled_turn_files_load():
    assert len(load_turns(DEFAULT_TURNS)) == 50
    extra = load_turns(DEFAULT_TURNS.with_name("chat_turns_extra.jsonl"))
    assert len(extra) == 16 and {t.tool for t in extra} <= set(load_tools())
