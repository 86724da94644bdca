"""ReDial names -> catalog ids by normalised title and year."""

from agent.ingest.catalog import Item
from eval.conversations.mapping import TitleMapper, catalog_forms, mapping_report

ITEMS = [
    Item(id="1", title="Matrix, The", year=1999),
    Item(id="32", title="Twelve Monkeys (a.k.a. 12 Monkeys)", year=1995),
    Item(id="5010", title="Black Hawk Down", year=2001),
    Item(id="7", title="Heat", year=1995),
    Item(id="8", title="Heat", year=1986),
    Item(id="9", title="Amélie (Fabuleux destin d'Amélie Poulain, Le)", year=2001),
    Item(id="10", title="Cinderella", year=1950),
    Item(id="11", title="Cinderella", year=2015),
]


def test_titles_match_with_their_year():
    mapper = TitleMapper(ITEMS)
    assert mapper.map("The Matrix (1999)") == "1"  # article moved back to the front
    assert mapper.map("Matrix (1999)") == "1"
    assert mapper.map("12 Monkeys (1995)") == "32"  # the bracketed alternative title
    assert mapper.map("Amelie (2001)") == "9"  # accents folded
    assert mapper.map("Heat (1986)") == "8" and mapper.map("Heat (1995)") == "7"
    assert mapper.map("Black Hawk Down (2002)") == "5010"  # a year off by one, when no exact year
    assert mapper.map("Heat (1990)") is None
    assert mapper.map("Some Other Film (1999)") is None


def test_a_name_without_a_year_maps_only_when_the_title_is_unique():
    mapper = TitleMapper(ITEMS)
    assert mapper.map("The Matrix") == "1"
    assert mapper.map("Cinderella ") is None  # 1950 or 2015


def test_same_title_and_year_picks_the_most_rated():
    items = [Item(id="1", title="Twins", year=1988), Item(id="2", title="Twins", year=1988)]
    assert TitleMapper(items, counts={"1": 3, "2": 9}).map("Twins (1988)") == "2"


def test_catalog_forms_include_bracketed_alternatives():
    assert catalog_forms("Twelve Monkeys (a.k.a. 12 Monkeys)") == {"twelve monkeys", "12 monkeys"}


def test_report_counts_movies_and_mentions():
    names = ["Heat (1995)", "Heat (1995)", "Nope (2000)", "The Matrix (1999)"]
    report = mapping_report(names, TitleMapper(ITEMS)).to_json()
    assert (report["movies"], report["movies_mapped"], report["mentions"], report["mentions_mapped"]) == (3, 2, 4, 3)
    assert report["mentions_share"] == 0.75
