"""Constrained tool choice: rules and LLM scores combine into a registered tool, whatever the LLM
prefers; the LLM's scores (a tiny random llama here) are calibrated log-probabilities over the
registered names only."""

from __future__ import annotations

import math
import re

import pytest

from agent.chat.tool_choice import (
    STYLES,
    ToolChooser,
    combine,
    example_turns,
    rule_scores,
)
from agent.chat.tools import load_tools
from agent.core.project import CatalogWords
from agent.llm import LoadedLlm
from tests.fakes.tiny_lm import plain_option_logprobs, tiny_llama


def test_choice_is_always_a_registered_tool_whatever_the_llm_prefers():
    tools = load_tools()
    llm = {name: -3.0 for name in tools}
    llm["describe_image"] = 0.0  # the LLM's favourite: wins when no rule speaks, loses to a rule match
    assert combine(tools, llm, rule_scores(tools, "hello there"), "combined").name == "describe_image"
    assert combine(tools, llm, rule_scores(tools, "only after 2000"), "combined").name == "filter_items"
    for mode in ("combined", "llm", "rules"):
        assert combine(tools, llm, rule_scores(tools, "xyz"), mode).name in tools


def test_llm_scores_are_calibrated_logprobs_over_the_registered_names():
    model, tok = tiny_llama()
    llm = LoadedLlm(model=model, tokenizer=tok)
    tools = load_tools()
    chooser = ToolChooser(lambda: llm, mode="llm")
    scores = chooser.llm_scores(tools, "funny movies about toys")
    assert set(scores) == set(tools)
    assert sum(math.exp(v) for v in scores.values()) == pytest.approx(1.0)
    names = list(tools)
    prompt = chooser.prompt(tools, "funny movies about toys")
    raw = plain_option_logprobs(llm, prompt, names)  # the plain run: every name after the whole prompt
    prior = plain_option_logprobs(llm, chooser.prompt(tools, "N/A"), names)
    diff = {n: r - p for n, r, p in zip(names, raw, prior, strict=True)}
    top = max(diff.values())
    norm = top + math.log(sum(math.exp(v - top) for v in diff.values()))
    assert scores == pytest.approx({n: v - norm for n, v in diff.items()}, abs=1e-4)
    assert chooser.choose(tools, "funny movies about toys").name in tools


def test_a_mode_needs_what_it_uses():
    with pytest.raises(ValueError, match="mode"):
        ToolChooser(None, mode="oracle")
    with pytest.raises(ValueError, match="needs an LLM"):
        ToolChooser(None, mode="llm")
    with pytest.raises(ValueError, match="no tools"):
        ToolChooser(None, mode="rules").choose({}, "hi")


class _Tool:
    def __init__(self, name, examples):
        self.name, self.examples = name, examples


def test_examples_alternate_between_tools_so_no_tool_always_answers_last():
    tools = {"a": _Tool("a", ("a1", "a2")), "b": _Tool("b", ("b1",)), "c": _Tool("c", ("c1", "c2", "c3"))}
    assert example_turns(tools) == [("a1", "a"), ("b1", "b"), ("c1", "c"), ("a2", "a"), ("c2", "c"), ("c3", "c")]


def test_turns_style_shows_examples_as_answered_turns_and_scores_without_calibration():
    model, tok = tiny_llama()
    llm = LoadedLlm(model=model, tokenizer=tok)
    tools = load_tools()
    chooser = ToolChooser(lambda: llm, mode="llm", style="turns")
    prompt = chooser.prompt(tools, "funny movies about toys", shown=["Heat (1995)"])
    first = example_turns(tools)[0]
    assert f"<|im_start|>user\nMessage: {first[0]}<|im_end|>\n<|im_start|>assistant\n{first[1]}<|im_end|>" in prompt
    assert "- similar_items(item): " in prompt and "- recommend(): " in prompt  # required arguments listed
    assert prompt.endswith("Movies shown last: Heat (1995)\nMessage: funny movies about toys<|im_end|>\n"
                           "<|im_start|>assistant\n")
    names = list(tools)
    raw = plain_option_logprobs(llm, prompt, names)
    top = max(raw)
    norm = top + math.log(sum(math.exp(v - top) for v in raw))
    scores = chooser.llm_scores(tools, "funny movies about toys", shown=["Heat (1995)"])
    assert scores == pytest.approx({n: v - norm for n, v in zip(names, raw, strict=True)}, abs=1e-4)


def test_an_unknown_prompt_style_is_refused():
    with pytest.raises(ValueError, match="style"):
        ToolChooser(None, mode="rules", style="essay")


@pytest.mark.parametrize("style", STYLES)
def test_the_prompt_says_the_catalogs_words(style):
    model, tok = tiny_llama()
    llm = LoadedLlm(model=model, tokenizer=tok)
    shop = CatalogWords("product", "products", "bought", "shopper")
    prompt = ToolChooser(lambda: llm, mode="llm", style=style, words=shop).prompt(
        load_tools(), "more like that", shown=["Zen Runner"], user="C0001")
    assert "the messages of a product recommendation chat" in prompt
    assert "Products shown last: Zen Runner\nThe user is user C0001." in prompt
    assert not re.search(r"movie recommendation|movies shown|MovieLens", prompt, re.IGNORECASE)
    default = ToolChooser(lambda: llm, mode="llm", style=style).prompt(load_tools(), "hi", user="7")
    assert "a movie recommendation chat" in default and "The user is MovieLens user 7." in default


# --- the built-in tools in the catalog's words ------------------------------------------------------

BUILT_IN = ("recommend", "search_catalog", "item_details", "similar_items", "filter_items", "user_history",
            "transcribe_audio", "describe_image")
"""recsage's own tools (plugins/tools.py), in registration order; other plugins' tools are left out
so that their docstrings do not change these prompts."""
SUMMARIES = [
    "- {}recommend{}: Recommend movies for a request (mood, theme, genre) and/or a user's taste, each with a reason.",
    "- {}search_catalog{}: Search the catalog by words (title, plot, genre, tags), not personalised.",
    "- {}item_details{}: Facts about one movie (year, genres, tags, plot, people), by id or title.",
    "- {}similar_items{}: Movies similar to one given movie (by id, by title, or by its place in the last answer).",
    "- {}filter_items{}: Narrow the current recommendations to genres (or other facets) and/or a year range.",
    "- {}user_history{}: What a user has rated, most recent first (their taste, for the chat).",
    "- {}transcribe_audio{}: Transcribe a voice note (an audio file) into text.",
    "- {}describe_image{}: Read a photo or poster: the text printed on it (titles, names, taglines).",
]
REQUIRED = ["()", "(query)", "(item)", "(item)", "()", "(user)", "(path)", "(path)"]
EXAMPLES = [  # (message, tool) as the "list" style shows them: each tool's examples in turn
    ("a scary movie for Halloween", "recommend"), ("any ideas for a cozy evening with my parents?", "recommend"),
    ("find movies about volcanoes", "search_catalog"), ("are there films set on a submarine?", "search_catalog"),
    ("who stars in Jaws?", "item_details"), ("when did the third one come out?", "item_details"),
    ("more like Jaws", "similar_items"), ("I enjoyed Groundhog Day, anything close to it?", "similar_items"),
    ("only dramas", "filter_items"), ("keep the ones made before 1970", "filter_items"),
    ("what has user 12 rated?", "user_history"), ("remind me which movies I gave high ratings", "user_history"),
    ("transcribe note.m4a", "transcribe_audio"), ("what did I say in clip.wav?", "transcribe_audio"),
    ("read the poster in scan.png", "describe_image"), ("what is written on cover.jpg?", "describe_image"),
]
HEAD = ("You route the messages of a movie recommendation chat. Pick the one tool that best answers the user's "
        "latest message.")
MOVIELENS_LIST_SYSTEM = "\n".join([
    HEAD, "Tools:", *(s.format("", "") for s in SUMMARIES), "Examples:",
    *(f"Message: {m}\nTool: {t}" for m, t in EXAMPLES), "Answer with the tool name only."])
"""The "list" style's system prompt on MovieLens, as the tools and template said it before the tools
spoke the catalog's words (written from that source, not from today's output)."""
MOVIELENS_TURNS_SYSTEM = "\n".join([
    HEAD, "Tools, with the arguments each one needs:", *(s.format("", r) for s, r in zip(SUMMARIES, REQUIRED)),
    "Answer with the tool name only."])
MOVIELENS_TURNS = [EXAMPLES[i] for i in (0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15)]
"""The "turns" style's example turns: one example of each tool in turn."""


class _Echo:
    """An LLM stand-in whose chat formatting hands back what it was given."""

    def chat(self, system: str, user: str) -> tuple[str, str]:
        return system, user

    class tokenizer:  # lower case: the attribute name the chooser reads
        @staticmethod
        def apply_chat_template(messages, tokenize, add_generation_prompt):
            return messages


def _prompt(style: str, words: CatalogWords | None = None, message: str = "more like that"):
    """The chooser's prompt as the agent builds it: tools and chooser in the catalog's words (the
    defaults, MovieLens's, when ``words`` is None)."""
    given = {"words": words} if words else {}
    tools = {n: t for n, t in load_tools(**given).items() if n in BUILT_IN}
    return ToolChooser(lambda: _Echo(), mode="llm", style=style, **given).prompt(tools, message)


def test_the_movielens_list_prompt_is_todays_byte_for_byte():
    system, user = _prompt("list")
    assert system == MOVIELENS_LIST_SYSTEM and user == "Message: more like that"


def test_the_movielens_turns_prompt_is_todays_byte_for_byte():
    messages = _prompt("turns")
    assert messages[0] == {"role": "system", "content": MOVIELENS_TURNS_SYSTEM}
    turns = [(messages[i]["content"], messages[i + 1]["content"]) for i in range(1, len(messages) - 1, 2)]
    assert turns == [(f"Message: {m}", t) for m, t in MOVIELENS_TURNS]
    assert messages[-1] == {"role": "user", "content": "Message: more like that"}


SHOP_WORDS = CatalogWords("product", "products", "bought", "shopper")
MOVIE_ONLY = re.compile(r"movie|film|watched|movielens", re.IGNORECASE)


@pytest.mark.parametrize("style", STYLES)
def test_a_shops_prompt_says_its_words_in_every_tool_and_example(style):
    prompt = _prompt(style, SHOP_WORDS)
    text = "\n".join(prompt) if style == "list" else "\n".join(m["content"] for m in prompt)
    assert "Recommend products for a request" in text and "Products similar to one given product" in text
    assert "Message: find products about volcanoes" in text and "Message: remind me which products I bought" in text
    assert not MOVIE_ONLY.search(text)
