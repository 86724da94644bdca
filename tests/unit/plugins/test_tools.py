"""The built-in chat tools (plugins/tools.py) say the catalog's words: MovieLens's descriptions,
examples and messages are today's, byte for byte; a shop's say product/products/bought, and its
rules still fire on its nouns."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from agent.chat.catalog import ChatCatalog
from agent.chat.tool_choice import rule_scores
from agent.chat.tools import ToolContext, load_tools
from agent.core.project import MOVIE_WORDS, NEUTRAL_WORDS, CatalogWords
from tests.fakes.chat import ITEMS, SHOP, FakeRecommender

SHOP_WORDS = CatalogWords("product", "products", "bought", "shopper")
MOVIE_ONLY = re.compile(r"movie|film|watched|movielens", re.IGNORECASE)
RATINGS = pd.DataFrame({"user": ["1", "1", "1", "2"], "item": ["5", "1", "4", "6"],
                        "timestamp": [30, 10, 20, 5], "rating": [4.0, 5.0, 3.5, 4.0]})
CLICKS = pd.DataFrame({"user": ["u1", "u1"], "item": ["p1", "p3"], "timestamp": [1, 2], "rating": [float("nan")] * 2})


def movie_context(recommender=None) -> ToolContext:
    return ToolContext(recommender=recommender or FakeRecommender(), catalog=ChatCatalog(ITEMS, RATINGS))


def shop_context(recommender=None, events=CLICKS) -> ToolContext:
    return ToolContext(recommender=recommender or FakeRecommender(SHOP),
                       catalog=ChatCatalog(SHOP, events, words=SHOP_WORDS))


def test_movielens_messages_are_todays_byte_for_byte():
    tools, rec = load_tools(), FakeRecommender()
    similar = tools["similar_items"](movie_context(rec), {"item": "the matrix", "k": 2})
    assert similar.text == ("2 similar movies:\n1. Inception (2010) [Action, Sci-Fi, Thriller] (id 9)\n"
                            "2. Toy Soldiers (1991) [Action, Drama] (id 2)")
    tools["filter_items"](movie_context(rec), {"year_min": 2000})
    assert rec.calls[-1]["query"] == "popular movies"
    history = tools["user_history"](movie_context(), {"user": "1", "k": 2})
    assert history.text == ("user 1 rated 3 movies; the latest 2:\n1. Matrix, The (1999) [Action, Sci-Fi] (id 5) rated 4\n"
                            "2. Shrek (2001) [Animation, Comedy, Fantasy] (id 4) rated 3.5")
    unknown = tools["item_details"](movie_context(), {"item": "Zzzz Qqqq"})
    assert unknown.text == "error: item_details: no movie called 'Zzzz Qqqq' in the catalog"


def test_a_shops_messages_say_its_words():
    tools, rec = load_tools(words=SHOP_WORDS), FakeRecommender(SHOP)
    similar = tools["similar_items"](shop_context(rec), {"item": "Trail Runner", "k": 2})
    assert similar.text == ("2 similar products:\n1. Road Racer [Running Shoes, Zest] (id p2)\n"
                            "2. Court Classic [Sneakers, Acme] (id p3)")
    tools["filter_items"](shop_context(rec), {"year_min": 2000})
    assert rec.calls[-1]["query"] == "popular products"
    clicks = tools["user_history"](shop_context(), {"user": "u1"})
    assert clicks.text == ("user u1 bought 2 products; the latest 2:\n1. Court Classic [Sneakers, Acme] (id p3)\n"
                           "2. Trail Runner [Running Shoes, Acme] (id p1)")
    stars = tools["user_history"](shop_context(events=CLICKS.assign(rating=[4.0, 5.0])), {"user": "u1"})
    assert stars.text.startswith("user u1 rated 2 products; the latest 2:\n")  # a log with ratings says so
    unknown = tools["item_details"](shop_context(), {"item": "Zzzz Qqqq"})
    assert unknown.text == "error: item_details: no product called 'Zzzz Qqqq' in the catalog"
    for obs in (similar, clicks, stars, unknown):
        assert not MOVIE_ONLY.search(obs.text)


def test_user_history_without_a_catalog_says_what_it_needs_not_movielens():
    obs = load_tools()["user_history"](ToolContext(recommender=FakeRecommender()), {"user": "1"})
    assert not obs.ok and "interactions log" in obs.text and "catalog=ChatCatalog" in obs.text
    assert not MOVIE_ONLY.search(obs.text)


def test_a_shops_tools_describe_themselves_in_its_words():
    tools = load_tools(words=SHOP_WORDS)
    assert tools["recommend"].summary.startswith("Recommend products for a request")
    assert tools["item_details"].summary.startswith("Facts about one product (")
    assert tools["similar_items"].summary.startswith("Products similar to one given product (")
    assert "find products about volcanoes" in tools["search_catalog"].examples
    assert tools["user_history"].examples == ("what has user 12 bought?", "remind me which products I bought")
    for t in tools.values():
        assert not MOVIE_ONLY.search(" ".join([t.description, *t.examples])), t.name
        assert "{" not in t.description + "".join(t.examples), t.name  # every placeholder filled


@pytest.mark.parametrize(("message", "tool"), [
    ("which products are waterproof?", "search_catalog"), ("are there any products for camping?", "search_catalog"),
    ("list products", "search_catalog"), ("have I bought this before?", "user_history"),
    ("show my products", "user_history")])
def test_a_shops_nouns_and_verb_fire_the_rules(message, tool):
    assert rule_scores(load_tools(words=SHOP_WORDS), message)[tool] == 1.0
    assert rule_scores(load_tools(), message)[tool] == 0.0  # only the shop's words made it fire


@pytest.mark.parametrize(("message", "tool", "count"), [
    ("which movies are scary?", "search_catalog", 1.0), ("which movie is that", "search_catalog", 1.0),
    ("are there films about sharks", "search_catalog", 1.0), ("list movies", "search_catalog", 1.0),
    ("have I watched it?", "user_history", 1.0), ("show my movies", "user_history", 1.0),
    ("which products are waterproof?", "search_catalog", 0.0)])
def test_movielens_rules_fire_as_before(message, tool, count):
    """Each movie trigger counts once, as before the catalog's words joined its alternatives."""
    assert rule_scores(load_tools(words=MOVIE_WORDS), message)[tool] == count


def test_neutral_words_read_as_sentences():
    tools = load_tools(words=NEUTRAL_WORDS)
    assert tools["user_history"].examples == ("what has user 12 interacted with?", "remind me which items I interacted with")
    assert rule_scores(tools, "have i interacted with it")["user_history"] == 1.0
