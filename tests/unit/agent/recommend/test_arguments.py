"""agent.recommend.arguments: the merge of a query's reading with the arguments given explicitly."""

from agent.recommend.arguments import with_understood
from agent.retrieval.retriever import Filters

READ = {"query": "funny toys", "liked": ["1"], "mentioned": ["1", "2"], "exclude": ["1"], "facets": {"genres": ("Animation",)},
        "year_min": 1980, "year_max": 1989}


def test_explicit_facets_and_years_win_over_the_reading():
    _, filters, *_ = with_understood(READ, "q", Filters({"genres": ("Comedy",)}, None, 2000), (), (), ())
    assert filters.facets == {"genres": ("Comedy",)}
    assert (filters.year_min, filters.year_max) == (1980, 2000)


def test_the_reading_fills_what_was_not_given_and_titles_add_up():
    query, filters, exclude, liked, mentioned = with_understood(READ, "a funny movie about toys", None, ["9"], ["5"], ())
    assert query == "funny toys"  # the search words the query was read as
    assert filters.facets == {"genres": ("Animation",)} and (filters.year_min, filters.year_max) == (1980, 1989)
    assert exclude == ["9", "1"] and liked == ["5", "1"] and mentioned == ["1", "2"]


def test_a_reading_without_search_words_keeps_the_query():
    query, *_ = with_understood({**READ, "query": ""}, "only comedies", None, (), (), ())
    assert query == "only comedies"


def test_explain_true_is_every_item_false_none_and_an_int_the_first_n():
    from agent.recommend.arguments import explained_count

    assert explained_count(True, 10) == 10
    assert explained_count(False, 10) == 0
    assert explained_count(5, 10) == 5
    assert explained_count(5, 3) == 3  # never more than the answer has


def test_the_chat_tools_explain_the_configured_number_of_top_items():
    from types import SimpleNamespace

    from agent.core.config import Settings
    from plugins.tools import _explain

    assert _explain(SimpleNamespace(settings=Settings(chat_explained_items=3))) == 3
    assert _explain(SimpleNamespace(settings=Settings(chat_explain=False, chat_explained_items=3))) == 0
