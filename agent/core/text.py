"""The one place text is normalised, tokenized and titles are shown: every stage that compares words
(BM25, the chat catalog's title lookup, explanation evidence and its checker, the rerank training
data) uses these functions, so "the same words" means the same thing everywhere.

The functions differ only where the callers need different answers, and each says why; merging
them would change benchmark numbers or generated data.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[a-z0-9]+")

STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "i", "in", "is", "it", "me", "my",
    "of", "on", "or", "some", "something", "that", "the", "this", "to", "with", "about", "like",
    "want", "looking", "film", "films", "movie", "movies",
})
"""Function words and the words every movie request contains: they say nothing about which item."""

ARTICLES = ("The", "A", "An", "Les", "La", "Le", "Il", "Das", "Der", "Die", "El")
"""Articles MovieLens moves behind a title ("Matrix, The")."""

_ARTICLE_LAST = re.compile(rf"^(.*), ({'|'.join(ARTICLES)})$")


def ascii_fold(text: str) -> str:
    """``text`` as ASCII, case kept: accents are dropped ("Amélie" -> "Amelie") and so is any other
    non-ASCII character ("WALL·E" -> "WALLE")."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def words(text: str) -> list[str]:
    """Lower-cased ASCII-folded alphanumeric runs ("Sci-Fi, Cité" -> sci, fi, cite)."""
    return _WORD.findall(ascii_fold(text.lower()))


def normalise(text: str) -> str:
    """Lower-case ASCII words separated by single spaces ("Amélie!" -> "amelie"): the form titles
    and messages are compared in."""
    return " ".join(words(text))


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """:func:`words` minus a few function words ('sci-fi' -> sci, fi): BM25's terms and the words
    explanation evidence matches on."""
    return [t for t in words(text) if t not in stopwords]


def normalise_unfolded(text: str) -> str:
    """Lower-case ASCII words of ``text`` with no accent folding: every non-ASCII character
    separates words ("Amélie" -> "am lie").

    Kept apart from :func:`normalise` because the rerank training data's exclusions (request texts
    equal to a benchmark text) and plot-word filter were computed this way; folding would change
    which generated requests are kept, so the data set would no longer regenerate identically."""
    return " ".join(_WORD.findall(text.lower()))


def padded_words(text: str) -> str:
    """Lower-case words without accents, separated by single spaces and padded with one space each
    side, for whole-word substring search (``" cowboy doll " in padded_words(sentence)``).

    Unlike :func:`normalise`, a non-ASCII character that is not an accent separates words instead
    of vanishing ("WALL·E" -> " wall e ", where normalise gives "walle"): the explanation checker
    looks for a title's words in generated text, where the LLM may write the dot as a space."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    return " " + " ".join(_WORD.findall(folded)) + " "


def display_title(title: str) -> str:
    """MovieLens sorts articles last ("Matrix, The"); people write "The Matrix"."""
    match = _ARTICLE_LAST.match(title.strip())
    return f"{match.group(2)} {match.group(1)}" if match else title.strip()
