"""The tool protocol (agent/chat/tools.py) and the built-in tools (plugins/tools.py) on a fake recommender."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.chat.tools import Observation, Tool, ToolContext, ToolError, load_tools, tool
from agent.core.errors import InputError
from agent.plugins import DuplicateName, tool_functions
from tests.fakes.chat import ITEMS, FakeRecommender

BUILT_IN = {"recommend", "search_catalog", "item_details", "similar_items", "filter_items", "user_history",
            "transcribe_audio", "describe_image"}


def context(**kw) -> ToolContext:
    from agent.chat.catalog import ChatCatalog

    return ToolContext(recommender=kw.get("recommender", FakeRecommender()), catalog=ChatCatalog(ITEMS),
                       settings=kw.get("settings"))


@tool(triggers=(r"\bweather\b",), examples=("is it raining?",))
def forecast(ctx: ToolContext, city: str, days: int = 1) -> str:
    """Weather for a city.

    Longer text the LLM may read."""
    if city == "boom":
        raise RuntimeError("kaput")
    if city == "nowhere":
        raise InputError("no such city")
    return f"{city}: sunny for {days} day(s); recommender is {type(ctx.recommender).__name__}"


def test_schema_comes_from_hints_and_docstring_and_hides_the_context():
    t = Tool(forecast)
    assert t.name == "forecast" and t.summary == "Weather for a city."
    assert "Longer text" in t.description
    assert set(t.parameters["properties"]) == {"city", "days"}
    assert t.parameters["required"] == ["city"]
    assert t.parameters["properties"]["days"]["type"] == "integer"
    assert t.triggers == (r"\bweather\b",) and t.examples == ("is it raining?",)
    assert t.schema()["name"] == "forecast"


def test_call_validates_and_injects_context():
    obs = Tool(forecast)(context(), {"city": "Oslo", "days": "3"})
    assert obs.ok and obs.text.startswith("Oslo: sunny for 3 day(s)") and "FakeRecommender" in obs.text


@pytest.mark.parametrize("arguments, fragment", [
    ({}, "city"),
    ({"city": "Oslo", "days": "many"}, "days"),
    ({"city": "Oslo", "colour": "red"}, "colour"),
])
def test_invalid_arguments_become_an_error_observation(arguments, fragment):
    obs = Tool(forecast)(context(), arguments)
    assert not obs.ok and "invalid arguments" in obs.text and fragment in obs.text


@pytest.mark.parametrize("city, fragment", [("nowhere", "no such city"), ("boom", "RuntimeError: kaput")])
def test_tool_failures_come_back_as_text_not_exceptions(city, fragment):
    obs = Tool(forecast)(context(), {"city": city})
    assert not obs.ok and fragment in obs.text


def test_malformed_tools_are_rejected_with_the_plugin_named():
    def no_doc(x: int) -> str:
        return ""

    def untyped(x) -> str:
        """Has a doc."""

    with pytest.raises(ToolError, match="docstring"):
        Tool(no_doc)
    with pytest.raises(ToolError, match="type hint"):
        Tool(untyped)
    with pytest.raises(ToolError, match="plugin 'thirdparty'"):
        load_tools({"untyped": (untyped, "thirdparty")})


def test_a_class_tool_uses_its_call_signature_and_docstring():
    class Counter:
        name = "count_words"

        def __init__(self):
            self.loaded = False

        def __call__(self, text: str) -> Observation:
            """Count the words of a text."""
            self.loaded = True
            return Observation(str(len(text.split())), data={"n": len(text.split())})

    obj = Counter()
    t = Tool(obj)
    assert t.name == "count_words" and t.summary == "Count the words of a text." and not obj.loaded
    assert t(context(), {"text": "a b c"}).data == {"n": 3}


def test_builtin_tools_register_through_the_plugin_hook():
    registered = tool_functions()
    assert BUILT_IN <= set(registered)
    assert {registered[n][1] for n in BUILT_IN} == {"builtin_tools"}
    tools = load_tools()
    assert all(t.summary for t in tools.values())


def test_two_plugins_registering_one_tool_name_is_an_error_naming_both(monkeypatch):
    from agent import plugins

    class Other:
        @plugins.hookspecs.hookimpl
        def register_tools(register):
            register(forecast)

    class Twin:
        @plugins.hookspecs.hookimpl
        def register_tools(register):
            register(forecast)

    pm = plugins.plugin_manager()
    pm.register(Other, name="other_plugin")
    pm.register(Twin, name="twin_plugin")
    try:
        with pytest.raises(DuplicateName, match="other_plugin.*twin_plugin|twin_plugin.*other_plugin"):
            tool_functions()
    finally:
        pm.unregister(name="other_plugin")
        pm.unregister(name="twin_plugin")


def test_recommend_tool_passes_filters_exclusions_and_avoided_genres():
    rec = FakeRecommender()
    tools = load_tools()
    obs = tools["recommend"](context(recommender=rec), {
        "query": "funny", "year_min": 2000, "exclude": ["4"], "avoid_genres": ["Horror"]})
    assert obs.ok and obs.items
    assert all(i["year"] >= 2000 for i in obs.items)
    assert "4" not in {i["id"] for i in obs.items}
    assert {"3", "7"} <= set(rec.calls[-1]["exclude"])  # every horror item excluded
    assert "(id " in obs.text


def test_similar_items_resolves_a_title_and_seeds_the_history():
    rec = FakeRecommender()
    obs = load_tools()["similar_items"](context(recommender=rec), {"item": "the matrix"})
    assert obs.ok and rec.calls[-1]["history"] == ["5"] and obs.data["focus"] == "5"
    assert "5" not in {i["id"] for i in obs.items}


def test_item_details_by_title_and_unknown_title_suggests():
    tools = load_tools()
    obs = tools["item_details"](context(), {"item": "Toy Story"})
    assert obs.ok and "Toy Story (1995)" in obs.text and obs.data["focus"] == "1"
    bad = tools["item_details"](context(), {"item": "Completely Unknown Picture"})
    assert not bad.ok and "no movie called" in bad.text


def test_filter_items_needs_a_filter():
    obs = load_tools()["filter_items"](context(), {})
    assert not obs.ok and "say which genre" in obs.text and "years" in obs.text


def test_user_history_reads_ratings_in_time_order(tmp_path: Path):
    import pandas as pd

    from agent.chat.catalog import ChatCatalog

    events = pd.DataFrame({"user": ["1", "1", "1", "2"], "item": ["5", "1", "4", "6"],
                           "timestamp": [30, 10, 20, 5], "rating": [4.0, 5.0, 3.5, 4.0]})
    ctx = ToolContext(recommender=FakeRecommender(), catalog=ChatCatalog(ITEMS, events))
    obs = load_tools()["user_history"](ctx, {"user": "1", "k": 2})
    assert [i["id"] for i in obs.items] == ["5", "4"] and obs.items[0]["rating"] == 4.0
    assert "rated 3 movies" in obs.text
    unknown = load_tools()["user_history"](ctx, {"user": "99"})
    assert not unknown.ok and "unknown user" in unknown.text


def test_user_history_of_implicit_events_lists_facets_without_ratings():
    import pandas as pd

    from agent.chat.catalog import ChatCatalog
    from tests.fakes.chat import SHOP

    events = pd.DataFrame({"user": ["u1", "u1"], "item": ["p1", "p3"], "timestamp": [1, 2], "rating": [float("nan")] * 2})
    ctx = ToolContext(recommender=FakeRecommender(SHOP), catalog=ChatCatalog(SHOP, events))
    obs = load_tools()["user_history"](ctx, {"user": "u1"})
    assert obs.ok and obs.items[0]["facets"] == {"category": ["Sneakers"], "brand": ["Acme"]}
    assert "1. Court Classic [Sneakers, Acme] (id p3)\n2. Trail Runner [Running Shoes, Acme] (id p1)" in obs.text
    assert "rated" not in obs.text.split(":", 1)[1]  # clicks carry no rating


def test_media_tools_fail_as_text_and_load_nothing_before_the_first_call(tmp_path: Path, fake_settings):
    tools = load_tools()
    assert tools["transcribe_audio"].obj._converter is None  # registering loads no model
    ctx = context(settings=fake_settings)  # no provisioned models in this home
    for name in ("transcribe_audio", "describe_image"):
        obs = tools[name](ctx, {"path": str(tmp_path / "missing.file")})
        assert not obs.ok and obs.text.startswith(f"error: {name}")


def test_similar_items_falls_back_to_the_items_facts_outside_the_interaction_data():
    class NoHistory(FakeRecommender):
        def recommend(self, *, history=None, **kw):
            if history:
                raise InputError("none of the history ids is a known item")
            return super().recommend(**kw)

    rec = NoHistory()
    obs = load_tools()["similar_items"](context(recommender=rec), {"item": "Toy Story"})
    assert obs.ok and obs.items and "1" not in {i["id"] for i in obs.items}
    assert "Toy Story" in rec.calls[-1]["query"] and "Animation" in rec.calls[-1]["query"]


def test_word_placeholders_are_filled_and_other_text_is_left_as_written():
    from agent.chat.tools import in_words
    from agent.core.project import CatalogWords

    books = CatalogWords("c++ book", "c++ books", "read", "reader")
    assert in_words("Find {nouns} like {a_noun}; {Nouns} {verb} by a {audience}", books) == (
        "Find c++ books like a c++ book; C++ books read by a reader")
    assert in_words(r'\bwhich ({noun}|{nouns})\b, \d{2}, {"k": 1}, {unknown}', books, pattern=True) == (
        r'\bwhich (c\+\+\ book|c\+\+\ books)\b, \d{2}, {"k": 1}, {unknown}')


@tool(triggers=(r"\b\d{4}\b",), examples=('convert {"a": 1}',))
def to_json(ctx: ToolContext, text: str) -> str:
    """Turn text into JSON like {"a": 1}, for {nouns} too (a literal brace pair stays as written)."""
    return text


def test_a_tool_that_knows_nothing_of_words_shows_the_same_text_in_every_catalog():
    """A third-party docstring keeps its braces; only the word placeholders are filled."""
    from agent.core.project import NEUTRAL_WORDS

    plain = Tool(forecast, NEUTRAL_WORDS)
    assert plain.description == "Weather for a city.\n\nLonger text the LLM may read."
    assert plain.triggers == (r"\bweather\b",) and plain.examples == ("is it raining?",)
    braces = Tool(to_json, NEUTRAL_WORDS)
    assert braces.summary == 'Turn text into JSON like {"a": 1}, for items too (a literal brace pair stays as written).'
    assert braces.triggers == (r"\b\d{4}\b",) and braces.examples == ('convert {"a": 1}',)


@tool(examples=("more like Jaws", "{a_noun} for tonight"), neutral_examples=("more like the first {noun}",))
def lookalike(ctx: ToolContext, item: str) -> str:
    """{Nouns} like one."""
    return item


def test_neutral_examples_replace_movie_examples_outside_movies_only():
    from agent.core.project import MOVIE_WORDS, NEUTRAL_WORDS

    assert Tool(lookalike, MOVIE_WORDS).examples == ("more like Jaws", "a movie for tonight")
    assert Tool(lookalike, NEUTRAL_WORDS).examples == ("more like the first item",)
    assert Tool(lookalike, NEUTRAL_WORDS).summary == "Items like one."
    assert Tool(forecast, NEUTRAL_WORDS).examples == ("is it raining?",)  # no neutral ones: its own everywhere


def test_a_tool_context_says_its_catalogs_words():
    from agent.chat.catalog import ChatCatalog
    from agent.core.project import MOVIE_WORDS, NEUTRAL_WORDS

    assert ToolContext(recommender=None, catalog=ChatCatalog(ITEMS, words=NEUTRAL_WORDS)).words is NEUTRAL_WORDS
    assert ToolContext(recommender=None).words is MOVIE_WORDS  # no catalog: ChatCatalog's default
