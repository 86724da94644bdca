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
