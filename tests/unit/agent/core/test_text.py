"""The one text module: normalising, tokenizing and showing titles, and where the variants differ."""

import pytest

from agent.core.text import (
    ascii_fold,
    display_title,
    normalise,
    normalise_unfolded,
    padded_words,
    tokenize,
    words,
)


def test_words_are_lower_cased_ascii_folded_runs():
    assert words("A Sci-Fi film, in Cité!") == ["a", "sci", "fi", "film", "in", "cite"]
    assert ascii_fold("Amélie WALL·E") == "Amelie WALLE"


def test_tokenize_drops_function_words_and_request_filler():
    assert tokenize("A Sci-Fi film about DREAMS, in Cité!") == ["sci", "fi", "dreams", "cite"]
    assert tokenize("the film", stopwords=frozenset()) == ["the", "film"]


def test_normalise_joins_folded_words_with_single_spaces():
    assert normalise("  Amélie!  ") == "amelie"
    assert normalise("The Usual   Suspects?") == "the usual suspects"
    assert normalise("¡¿!") == ""


@pytest.mark.parametrize("text, folded, unfolded, padded", [
    ("Amélie", "amelie", "am lie", " amelie "),      # accents: only the unfolded form splits
    ("WALL·E", "walle", "wall e", " wall e "),        # a foreign mark: normalise drops it, the others split
    ("Toy Story 2", "toy story 2", "toy story 2", " toy story 2 "),
])
def test_the_variants_differ_only_on_non_ascii_characters(text, folded, unfolded, padded):
    assert normalise(text) == folded
    assert normalise_unfolded(text) == unfolded
    assert padded_words(text) == padded


def test_padded_words_allow_whole_word_search():
    assert padded_words("cowboy doll") in padded_words("A Cowboy Doll, jealous.")
    assert padded_words("cow") not in padded_words("A Cowboy Doll")


@pytest.mark.parametrize("raw, shown", [("Matrix, The", "The Matrix"), ("Toy Story", "Toy Story"),
                                        ("Usual Suspects, The", "The Usual Suspects"),
                                        ("Cité des enfants perdus, La", "La Cité des enfants perdus"),
                                        ("Tom, Dick and Harry", "Tom, Dick and Harry")])
def test_display_title_moves_the_article_back(raw, shown):
    assert display_title(raw) == shown
