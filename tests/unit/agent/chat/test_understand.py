"""Conversation understanding by the LLM (agent/chat/understand.py): decoding constrained to the
request schema always parses (a random tiny LM, whatever it prefers), titles resolve with their
year, and the LLM's reading is merged into the rules' request, never replacing it."""

from __future__ import annotations

import json
import re

import pytest

from agent.chat import understand as und
from agent.chat.catalog import ChatCatalog
from agent.chat.request import Request, read_request
from agent.core.config import Settings
from agent.core.project import CatalogWords
from agent.ingest.catalog import Item
from agent.llm import LoadedLlm
from tests.fakes.tiny_lm import tiny_llama

ITEMS = [
    Item(id="1", title="Super Troopers", year=2001, facets={"genres": ("Comedy",)}),
    Item(id="4", title="Titanic", year=1997, facets={"genres": ("Drama", "Romance")}),
    Item(id="5", title="Titanic", year=1953, facets={"genres": ("Drama",)}),
    Item(id="6", title="Halloween", year=1978, facets={"genres": ("Horror",)}),
]


def catalog() -> ChatCatalog:
    return ChatCatalog(ITEMS)


def tiny_llm() -> LoadedLlm:
    from tokenizers import decoders

    model, tok = tiny_llama()
    tok.backend_tokenizer.decoder = decoders.Fuse()  # characters joined without spaces, as a real BPE decodes
    return LoadedLlm(model=model, tokenizer=tok)


def reading(**fields) -> dict:
    empty = {"liked": [], "disliked": [], "seen": [], "wanted": [], "unwanted": [], "year_min": None,
             "year_max": None, "need": "", "ask": ""}
    return {**empty, **fields}


def test_constrained_decoding_of_a_random_model_parses_and_keeps_to_the_schema():
    llm = tiny_llm()
    values = ["Comedy", "Horror"]
    schema = und.request_schema(values)
    text = und.constrained_json(llm, llm.chat("system", "a conversation"), schema, max_new_tokens=2000)
    out = json.loads(text)
    assert list(out) == list(schema["properties"])  # every field, in the schema's order
    for key in ("liked", "disliked", "seen"):
        assert len(out[key]) <= und.MAX_TITLES and all(len(t) <= und.MAX_TITLE_CHARS for t in out[key])
    assert set(out["wanted"]) | set(out["unwanted"]) <= set(values)
    assert len(out["need"]) <= und.MAX_NEED_CHARS


def test_a_reading_cut_off_by_the_token_budget_leaves_the_rules_request_alone(monkeypatch):
    llm = tiny_llm()
    assert und.read_with_llm(llm, [{"role": "user", "content": "hi"}], catalog(), max_new_tokens=3) is None
    rules = Request(liked=["1"])
    monkeypatch.setattr(und, "read_with_llm", lambda *a, **k: None)
    assert und.understand(rules, [], catalog(), llm) is rules and rules.liked == ["1"]


def test_titles_resolve_with_their_year_and_unknown_ones_are_dropped():
    cat = catalog()
    assert und.resolve_title("Titanic (1953)", cat) == "5"
    assert und.resolve_title("Titanic (1998)", cat) == "4"  # one year off
    assert und.resolve_title("Super Troopers", cat) == "1"
    assert und.resolve_title("A Film Nobody Made (1990)", cat) is None
    assert und.resolve_title("(1990)", cat) is None


def test_the_llm_reading_is_added_to_the_rules_request():
    rules = Request(liked=["1"], mentioned=["1"], facets={"genres": ("Comedy",)}, year_min=1990, need="funny cops")
    merged = und.merge(rules, reading(liked=["Super Troopers (2001)", "Halloween (1978)", "Nope (1901)"],
                                      disliked=["Halloween"], seen=["Titanic (1953)"],
                                      wanted=["Horror", "Western"], unwanted=["Drama"],
                                      year_min=1970, year_max=7e59, need="funny police comedy", ask="more like it"),
                       catalog())
    assert merged.liked == ["1", "6"] and merged.liked_ids == ["1"]  # said both: disliked wins
    assert merged.disliked == ["6"] and merged.seen == ["5"] and merged.mentioned == ["1", "6", "5"]
    assert merged.facets == {"genres": ("Comedy", "Horror")}  # "Western" is no catalog value
    assert merged.unwanted == {"genres": ("Drama",)}
    assert (merged.year_min, merged.year_max) == (1990, None)  # the rules' years stand
    assert merged.need == "funny cops police comedy" and merged.ask == "more like it"


def test_llm_years_are_used_when_the_rules_found_none_and_only_when_plausible():
    merged = und.merge(Request(), reading(year_min=1980, year_max=99999), catalog())
    assert (merged.year_min, merged.year_max) == (1980, None)


def test_read_request_asks_the_llm_only_when_the_setting_says_so(monkeypatch):
    calls = []

    def fake(request, messages, cat, settings):
        calls.append(messages)
        return und.merge(request, reading(liked=["Halloween (1978)"]), cat)

    monkeypatch.setattr(und, "understand_with_settings", fake)
    messages = [{"role": "user", "content": "I loved Super Troopers (2001)"}]
    assert read_request(messages, catalog(), Settings()).liked == ["1"] and not calls
    assert read_request(messages, catalog(), Settings(understanding="llm")).liked == ["1", "6"]
    assert calls == [messages]


def test_facets_with_too_many_values_are_not_offered():
    many = [Item(id=str(i), title=f"Film {i}", year=2000, facets={"brand": (f"b{i}",)})
            for i in range(und.MAX_ENUM_VALUES + 1)]
    assert und.facet_values(ChatCatalog(many)) == {}
    assert und.facet_values(catalog())["Horror"] == "genres"


@pytest.mark.parametrize("role", ["user", "assistant"])
def test_the_transcript_names_each_speaker_and_skips_system_messages(role):
    text = und.transcript([{"role": "system", "content": "x"}, {"role": role, "content": " hi\n there "}])
    assert text == f"{und.ROLE_NAMES[role]}: hi there"


def test_the_prompt_says_the_catalogs_words_and_shows_the_movie_example_to_movies_only(monkeypatch):
    prompts_seen = []
    monkeypatch.setattr(und, "constrained_json", lambda llm, prompt, *a, **k: prompts_seen.append(prompt) or "{}")
    shop = ChatCatalog([Item(id="s1", title="Zen Runner", facets={"category": ("Running Shoes",)})],
                       words=CatalogWords("product", "products", "bought", "shopper"))
    messages = [{"role": "user", "content": "light running shoes"}]
    und.read_with_llm(tiny_llm(), messages, shop)
    und.read_with_llm(tiny_llm(), messages, catalog())
    shop_prompt, movie_prompt = prompts_seen
    assert "a product recommender (Assistant)" in shop_prompt and "kind of product wanted" in shop_prompt
    assert "Matrix" not in shop_prompt and not re.search(r"movie|watched|viewer", shop_prompt, re.IGNORECASE)
    assert "a movie recommender (Assistant)" in movie_prompt and "I loved The Matrix (1999)" in movie_prompt
