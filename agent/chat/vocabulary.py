"""The facet values a chat message can name, taken from the catalog: "running shoes" -> the facet
category = "Running Shoes", "something from Acme" -> brand = "Acme", "animated" -> genres = "Animation".

Any catalog value is matched as its words (case-folded, a hyphen or spaces between words) with
simple plural and singular forms of its last word ("sneaker" names "Sneakers"). A few everyday
words for MovieLens genres ("funny", "animated", "kids") are kept as synonyms, applied only where
the catalog has that value, and for such a value they replace the generic forms ("star wars" does
not name the genre War). A match inside a longer match of another value does not count:
"running shoes" names "Running Shoes", not also "Shoes".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENRE_WORDS: dict[str, str] = {
    r"comed(y|ies)|rom-?coms?": "Comedy",
    r"horror|slashers?": "Horror",
    r"sci-?fi|science[- ]fiction": "Sci-Fi",
    r"animat(ed|ion)|cartoons?|anime": "Animation",
    r"kids|children'?s?|family": "Children",
    r"romances?|romantic|rom-?coms?|love stor(y|ies)": "Romance",
    r"thrillers?": "Thriller",
    r"documentar(y|ies)": "Documentary",
    r"westerns?": "Western",
    r"war": "War",
    r"musicals?": "Musical",
    r"myster(y|ies)|whodunn?its?": "Mystery",
    r"crime|gangsters?|heists?": "Crime",
    r"dramas?": "Drama",
    r"fantasy": "Fantasy",
    r"action": "Action",
    r"adventures?": "Adventure",
    r"(film[- ])?noir": "Film-Noir",
}
"""MovieLens genre synonyms (regex -> genre), in the order a message's genres are listed."""


def _bounded(pattern: str) -> re.Pattern:
    return re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])", re.IGNORECASE)


def _word_forms(word: str) -> list[str]:
    """A value's last word with its simple plural or singular: shoes/shoe, sneaker/sneakers, bag/bags,
    accessory/accessories, dress/dresses."""
    lower = word.lower()
    if lower.endswith("ies") and len(lower) > 4:
        forms = [lower, lower[:-3] + "y"]
    elif lower.endswith("s") and not lower.endswith("ss"):
        forms = [lower, lower[:-1]] + ([lower[:-2]] if lower.endswith(("ses", "xes", "ches", "shes")) else [])
    elif lower.endswith("y") and len(lower) > 2 and lower[-2] not in "aeiou":
        forms = [lower, lower[:-1] + "ies"]
    else:
        forms = [lower, lower + "s", lower + "es"]
    return [re.escape(f) for f in dict.fromkeys(forms) if f]


def value_pattern(value: str) -> str | None:
    """The regex naming one facet value in a message, or None for a value without letters or digits."""
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", value)
    if not words or len(value.strip()) < 2:
        return None
    head = [re.escape(w.lower()) for w in words[:-1]]
    last = "(?:" + "|".join(_word_forms(words[-1])) + ")"
    return r"[\s-]+".join([*head, last])


@dataclass(frozen=True)
class _Entry:
    pattern: re.Pattern
    facet: str
    value: str


class FacetVocabulary:
    """Every facet value of a catalog as a pattern; :meth:`extract` finds those a message names."""

    def __init__(self, facets: Mapping[str, Iterable[str]]):
        """``facets``: facet name -> the values the catalog's items have."""
        self.facets = {name: sorted(set(values)) for name, values in facets.items()}
        entries: list[_Entry] = []
        for pattern, genre in GENRE_WORDS.items():  # synonyms first: they keep the genres' order
            entries += [_Entry(_bounded(pattern), name, genre) for name, values in self.facets.items() if genre in values]
        with_synonyms = {(e.facet, e.value) for e in entries}
        for name, values in self.facets.items():
            for value in values:
                pattern = value_pattern(value)
                if pattern and (name, value) not in with_synonyms:
                    entries.append(_Entry(_bounded(pattern), name, value))
        self.entries = entries

    @classmethod
    def from_items(cls, items: Iterable) -> FacetVocabulary:
        """From catalog Items (their ``facets``)."""
        facets: dict[str, set[str]] = {}
        for item in items:
            for name, values in item.facets.items():
                facets.setdefault(name, set()).update(values)
        return cls(facets)

    def extract(self, text: str) -> dict[str, tuple[str, ...]]:
        """Facet name -> the values the text names, in vocabulary order."""
        found = [(m.start(), m.end(), e) for e in self.entries for m in e.pattern.finditer(text)]
        kept: dict[str, list[str]] = {}
        for start, end, entry in found:
            inside = any(s <= start and end <= e and e - s > end - start and other.value != entry.value
                         for s, e, other in found)
            if not inside and entry.value not in kept.get(entry.facet, []):
                kept.setdefault(entry.facet, []).append(entry.value)
        order = {(e.facet, e.value): i for i, e in reversed(list(enumerate(self.entries)))}
        return {name: tuple(sorted(values, key=lambda v, n=name: order[(n, v)])) for name, values in kept.items()}
