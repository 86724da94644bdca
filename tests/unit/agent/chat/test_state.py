"""ChatState as JSON (what a shared session store keeps): every field survives, bad values are refused."""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from agent.chat.slots import Slots
from agent.chat.state import ChatState
from agent.core.errors import InputError


def full_state() -> ChatState:
    """Every field set to something other than its default."""
    return ChatState(
        user="7", query="funny toys please", search="funny toys", mood="lighter",
        facets={"genres": ("Comedy", "Animation"), "brand": ("Acme",)}, year_min=1990, year_max=2005,
        excluded=["3", "7"],
        shown=[{"id": "1", "title": "Toy Story", "year": 1995, "score": np.float32(0.5), "rank": np.int64(1),
                "facets": {"genres": ["Animation", "Comedy"]}},
               {"id": "8", "title": "Cars", "year": 2006, "score": 0.25, "explanation": None}],
        focus="8", liked=["5"], avoid=["6"], mentioned=["5", "9"],
        turns=[{"role": "user", "content": "funny toys please"},
               {"role": "assistant", "content": "Try Toy Story (id 1) or Cars (id 8)."}],
    )


def roundtrip(state: ChatState) -> ChatState:
    return ChatState.from_dict(json.loads(json.dumps(state.to_dict())))


def test_the_fixture_sets_every_field():
    """A field added to ChatState without a value here would make the round trip test vacuous for it."""
    state, default = full_state(), ChatState()
    unset = [f.name for f in fields(ChatState) if getattr(state, f.name) == getattr(default, f.name)]
    assert unset == []


def test_every_field_survives_json():
    state = full_state()
    back = roundtrip(state)
    for f in fields(ChatState):
        assert getattr(back, f.name) == getattr(state, f.name), f.name
    assert back.facets["genres"] == ("Comedy", "Animation")  # tuples again, in order
    assert type(back.shown[0]["score"]) is float and back.shown[0]["score"] == 0.5
    assert type(back.shown[0]["rank"]) is int and back.shown[0]["rank"] == 1


def test_a_restored_state_refines_like_the_original():
    state, back = full_state(), roundtrip(full_state())
    second = Slots(text="not the second one", ordinal=1, negate=True)
    assert back.referenced_item(second) == state.referenced_item(second) == "8"
    parameters = {"properties": {n: {} for n in ("query", "facets", "year_min", "year_max", "exclude", "avoid_genres")}}
    assert back.arguments(parameters, second) == state.arguments(parameters, second)
    assert back.arguments(parameters, second)["query"] == "funny toys light-hearted feel-good comedy"
    assert back.shown_labels() == ["Toy Story (1995)", "Cars (2006)"]


def test_the_default_state_survives_too():
    assert roundtrip(ChatState()) == ChatState()


def test_to_dict_is_plain_json():
    data = full_state().to_dict()
    assert data["format"] == 1
    assert json.loads(json.dumps(data)) == data  # nothing json would change (tuples, numpy) is left


@pytest.mark.parametrize("data, says", [
    ([], "not a chat state"),
    ({"format": 2, "query": "x"}, "format 1"),
    ({"format": 1, "query": "x", "secret": 1}, "unknown chat state field"),
    ({"format": 1, "year_min": "1990"}, "'year_min'"),
    ({"format": 1, "year_min": True}, "'year_min'"),
    ({"format": 1, "excluded": [3]}, "'excluded'"),
    ({"format": 1, "facets": {"genres": "Comedy"}}, "'facets'"),
    ({"format": 1, "shown": ["1"]}, "'shown'"),
    ({"format": 1, "turns": {"role": "user"}}, "'turns'"),
])
def test_bad_stored_states_are_refused_with_the_reason(data, says):
    with pytest.raises(InputError, match=says):
        ChatState.from_dict(data)


def test_the_conversations_titles_reach_a_tool_that_takes_them():
    from agent.chat.request import Request

    state = ChatState()
    state.read_conversation(Request(liked=["1", "2"], disliked=["2"], mentioned=["1", "2", "3"], named=["1"]))
    parameters = {"properties": {"liked": {}, "mentioned": {}, "exclude": {}}}
    assert state.arguments(parameters, Slots(text="any other?")) == {
        "liked": ["1"], "mentioned": ["1", "2", "3"], "exclude": ["1", "2"]}


MESSAGE = "something lighter and animated from the 90s, I loved Toy Story (1995)"


def test_read_query_reads_a_request_as_a_first_chat_message():
    from agent.chat.catalog import ChatCatalog
    from agent.chat.state import read_query
    from tests.fakes.chat import ITEMS

    read = read_query(MESSAGE, ChatCatalog(ITEMS))
    assert read["liked"] == ["1"] and read["mentioned"] == ["1"]
    assert read["facets"] == {"genres": ["Animation"]}
    assert (read["year_min"], read["year_max"]) == (1990, 1999)
    # Toy Story was named; "lighter" avoids Horror and Thriller: Scream, Saw, Inception
    assert sorted(read["exclude"], key=int) == ["1", "3", "7", "9"]
    assert read["query"].endswith("light-hearted feel-good comedy") and "90s" not in read["query"]


def test_the_chat_passes_the_recommender_what_read_query_reads():
    """One reading for both doors: the first chat turn calls the recommender with read_query's arguments."""
    from agent.chat.state import read_query
    from tests.fakes.chat import fake_agent

    agent = fake_agent()
    list(agent.session().send(MESSAGE))
    call, read = agent.recommender.calls[-1], read_query(MESSAGE, agent.catalog)
    assert call["query"] == read["query"] and call["liked"] == read["liked"]
    assert sorted(call["exclude"]) == sorted(read["exclude"])
    assert call["filters"].facets == {"genres": ("Animation",)}
    assert (call["filters"].year_min, call["filters"].year_max) == (read["year_min"], read["year_max"])
