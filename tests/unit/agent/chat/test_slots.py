"""Slot extraction (agent/chat/slots.py), title lookup (agent/chat/catalog.py) and the state's request logic."""

from __future__ import annotations

import pytest

from agent.chat.catalog import ChatCatalog, title_forms
from agent.chat.slots import extract_slots, extract_years
from agent.chat.state import ChatState
from agent.chat.vocabulary import FacetVocabulary
from agent.core.errors import InputError
from agent.ingest.catalog import Item
from tests.fakes.chat import ITEMS

MOVIELENS_GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
                    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                    "War", "Western")
CATALOG = ChatCatalog(ITEMS)
CATALOG.vocabulary = FacetVocabulary({"genres": MOVIELENS_GENRES})


def slots_of(text: str):
    return extract_slots(text, CATALOG)


@pytest.mark.parametrize("text, years", [
    ("only after 2000", (2001, None)),
    ("since 2000 please", (2000, None)),
    ("2005 or later", (2005, None)),
    ("before 1975", (None, 1974)),
    ("up to 1990", (None, 1990)),
    ("between 1980 and 1990", (1980, 1990)),
    ("from 1990 to 1985", (1985, 1990)),
    ("from the 90s", (1990, 1999)),
    ("1970s westerns", (1970, 1979)),
    ("an 80s teen comedy", (1980, 1989)),
    ("something from the 2000s", (2000, 2009)),
    ("made in 1999", (1999, 1999)),
    ("recent sci-fi", (2010, None)),
    ("funny toys", (None, None)),
])
def test_years(text, years):
    assert extract_years(text) == years


@pytest.mark.parametrize("text, expected", [
    ("more like the second one", {"ordinal": 1}),
    ("tell me about the last one", {"ordinal": -1}),
    ("what about #3", {"ordinal": 2}),
    ("not that one", {"negate": True, "refers_back": True}),
    ("I've seen it already", {"negate": True}),
    ("recommend as user 42", {"user": "42"}),
    ("details for item 318", {"item_id": "318"}),
    ("something lighter", {"mood": "lighter"}),
    ("a bit darker please", {"mood": "darker"}),
    ("only comedies", {"facets": {"genres": ("Comedy",)}}),
    ("sci-fi horror", {"facets": {"genres": ("Horror", "Sci-Fi")}}),
    ("a rom-com or a kids movie", {"facets": {"genres": ("Comedy", "Children", "Romance")}}),  # synonym order
    ("star wars", {"facets": {}}),  # 'wars' is not the genre War
    ("a war movie", {"facets": {"genres": ("War",)}}),
])
def test_slots(text, expected):
    slots = slots_of(text)
    for key, value in expected.items():
        assert getattr(slots, key) == value, key


def test_audio_or_image_path_only_where_local_files_are_allowed():
    assert extract_slots("listen to memo.ogg", paths=True).path == "memo.ogg"
    assert extract_slots("read poster.JPG", paths=True).path == "poster.JPG"
    assert extract_slots("transcribe ./notes/voice_1.wav", paths=True).path == "./notes/voice_1.wav"
    words = extract_slots("transcribe ./notes/voice_1.wav")  # the default (a server): a path is words
    assert words.path is None and "voice" in words.content_words


def test_title_forms_handle_trailing_articles_and_alternative_titles():
    assert title_forms("Matrix, The") == {"matrix", "the matrix"}
    assert "city of lost children" in title_forms("City of Lost Children, The (Cité des enfants perdus, La)")


def test_titles_are_found_in_messages_but_ordinary_words_are_not():
    catalog = ChatCatalog(ITEMS)
    assert catalog.find_title("something like The Matrix please") == "5"
    assert catalog.find_title("more like toy story") == "1"
    assert catalog.find_title('what about "up"?') == "10"
    assert catalog.find_title("I loved Inception") == "9"
    assert catalog.find_title("a movie to cheer me up") is None  # 'up' is a word here, not Up (2009)
    assert catalog.find_title("cars and toys") is None


def test_resolve_by_id_title_or_close_spelling():
    catalog = ChatCatalog(ITEMS)
    assert catalog.resolve("4") == "4"
    assert catalog.resolve("the matrix") == "5"
    assert catalog.resolve("Findng Nemo") == "6"
    with pytest.raises(InputError, match="no movie called"):
        catalog.resolve("Gone with the Wind")


@pytest.mark.parametrize("message, new", [
    ("something lighter", False),
    ("not that one", False),
    ("only after 2000", False),
    ("only comedies please", False),
    ("more like the second one", False),
    ("a heist movie with a twist", True),
    ("comedies about weddings", True),
])
def test_new_request_or_refinement(message, new):
    state = ChatState(query="funny animated movies about toys", shown=[{"id": "1"}, {"id": "4"}])
    assert state.is_new_request(slots_of(message)) is new


def test_first_message_is_always_a_request():
    assert ChatState().is_new_request(slots_of("comedies"))


def test_arguments_fill_tool_parameters_by_name_from_state():
    state = ChatState(query="toys", shown=[{"id": "1"}, {"id": "4"}], user="7")
    slots = extract_slots("more like the second one")
    state.update(slots)
    params = {"properties": {"item": {}, "user": {}, "exclude": {}, "city": {}}, "required": ["item", "city"]}
    args = state.arguments(params, slots)
    assert args == {"item": "4", "user": "7", "city": "more like the second one"}


def test_years_refine_in_place_and_a_contradiction_replaces_them():
    state = ChatState(query="westerns")
    state.update(extract_slots("only after 1960"))
    state.update(extract_slots("before 1980"))
    assert (state.year_min, state.year_max) == (1961, 1979)
    state.update(extract_slots("only before 1950"))
    assert (state.year_min, state.year_max) == (None, 1949)


def test_two_decades_span_both_and_search_text_drops_chat_filler():
    assert extract_years("a gangster movie from the 70s or 80s") == (1970, 1989)
    assert extract_slots("anything with dinosaurs?").search_text == "dinosaurs"
    assert extract_slots("hmm").search_text == "hmm"  # nothing left: keep the words given


def test_genre_synonyms_apply_only_where_the_catalog_has_that_genre():
    assert extract_slots("animated kids movies", ChatCatalog(ITEMS)).facets == {"genres": ("Animation", "Children")}
    shop = ChatCatalog([Item(id="s1", title="Trail Runner", facets={"category": ("Running Shoes",)})])
    assert extract_slots("animated kids movies", shop).facets == {}
    assert extract_slots("only comedies").facets == {}  # no catalog, no vocabulary


SHOP = ChatCatalog([
    Item(id="s1", title="Trail Runner", facets={"category": ("Running Shoes",), "brand": ("Acme",)}),
    Item(id="s2", title="Court Classic", facets={"category": ("Sneakers",), "brand": ("Zest Co",)}),
    Item(id="s3", title="Plain Tee", facets={"category": ("Shoes", "Accessories"), "brand": ("Acme",)}),
])


@pytest.mark.parametrize("message, facets", [
    ("I need running shoes", {"category": ("Running Shoes",)}),  # not also "Shoes" inside it
    ("some shoes", {"category": ("Shoes",)}),
    ("a SHOE for the gym", {"category": ("Shoes",)}),
    ("a white sneaker", {"category": ("Sneakers",)}),
    ("an accessory", {"category": ("Accessories",)}),
    ("something from Acme", {"brand": ("Acme",)}),
    ("zest-co sneakers or running-shoes", {"category": ("Running Shoes", "Sneakers"), "brand": ("Zest Co",)}),
    ("a shoehorn from acmeco", {}),  # a value inside another word names nothing
])
def test_any_catalog_facet_value_named_in_a_message_is_a_slot(message, facets):
    assert extract_slots(message, SHOP).facets == facets


def test_a_facet_refinement_keeps_the_other_facets_and_replaces_its_own():
    state = ChatState()
    state.update(extract_slots("comfortable running shoes", SHOP))
    state.update(extract_slots("only Acme", SHOP))
    assert state.facets == {"category": ("Running Shoes",), "brand": ("Acme",)}
    state.update(extract_slots("just sneakers", SHOP))
    assert state.facets == {"category": ("Sneakers",), "brand": ("Acme",)}
    params = {"properties": {"facets": {}, "genres": {}}}
    assert state.arguments(params, extract_slots("x", SHOP)) == {
        "facets": {"category": ["Sneakers"], "brand": ["Acme"]}}  # no genres: none asked for
