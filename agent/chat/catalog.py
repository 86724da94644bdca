"""What the chat agent knows about the catalog besides vectors: titles to ids, facts, user histories.

People name movies by title ("more like The Matrix"), not by id, and MovieLens spells titles as
"Matrix, The" with foreign titles in brackets, so titles are normalised once into every form a
person would type. User histories come from the project's interactions log (the frame that
agent.retrieval.interactions validates; agent.cli builds the catalog from the project), the same
events the retriever's protocol split reads.
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from difflib import get_close_matches
from typing import TYPE_CHECKING

from agent.chat.vocabulary import FacetVocabulary
from agent.core.errors import InputError
from agent.core.project import MOVIE_WORDS, CatalogWords
from agent.core.text import ARTICLES, ascii_fold, normalise
from agent.ingest.catalog import Item

if TYPE_CHECKING:
    import pandas as pd

_ARTICLE_SUFFIX = re.compile(rf"^(?P<body>.+), (?P<article>{'|'.join(a.lower() for a in ARTICLES)})$")
_BRACKETS = re.compile(r"\s*\([^)]*\)")
_WORD = re.compile(r"[A-Za-z0-9]+")
_CUES = frozenset({"like", "than", "about", "on", "of", "to", "loved", "liked", "enjoyed", "watched", "seen", "saw"})
_STOP = frozenset({"the", "a", "an", "of", "and", "in", "on", "to", "it", "me", "my", "you", "i", "one", "more"})


def _named(cased: list[str], before: list[str]) -> bool:
    """Whether words found in a message name a title: capitalised as one (a lone word not first in
    the sentence), or two or more real words right after a cue word."""
    content = [w for w in cased if w.lower() not in _STOP]
    if not content:
        return False
    if all(w[0].isupper() or w[0].isdigit() for w in content) and (len(content) > 1 or before):
        return True
    return len(content) > 1 and bool(before) and before[-1] in _CUES


def title_forms(title: str) -> set[str]:
    """Normalised ways to write a MovieLens title: "Usual Suspects, The" -> {"usual suspects",
    "the usual suspects"}; bracketed alternative titles are dropped."""
    base = _BRACKETS.sub("", title).strip() or title
    match = _ARTICLE_SUFFIX.match(base.lower())
    if match:
        forms = {normalise(f"{match['article']} {match['body']}"), normalise(match["body"])}
    else:
        forms = {normalise(base)}
    return {f for f in forms if f}


class ChatCatalog:
    """Titles -> ids, item facts and user histories for the chat tools."""

    def __init__(self, items: Iterable[Item], interactions: pd.DataFrame | None = None,
                 words: CatalogWords = MOVIE_WORDS):
        """``interactions``: the frame of agent.retrieval.interactions.load_interactions (string
        ``user`` and ``item``, ``timestamp``, ``rating`` NaN when the log has none); None: no histories.
        ``words``: the catalog's words, which the chat's prompts and answers say (the project's)."""
        self.words = words
        self.items: dict[str, Item] = {item.id: item for item in items}
        self.by_form: dict[str, list[str]] = defaultdict(list)
        self.message_forms: set[str] = set()
        """Forms as a person writes them in a sentence ("the matrix", not "matrix")."""
        for item in self.items.values():
            forms = title_forms(item.title)
            for form in forms:
                self.by_form[form].append(item.id)
            self.message_forms.add(max(forms, key=len))
        self.interactions = interactions
        self.vocabulary = FacetVocabulary.from_items(self.items.values())
        """The facet values (genres, categories, brands...) a message can name."""

    # --- titles -------------------------------------------------------------------------------

    def _pick(self, ids: list[str]) -> str:
        """Among same-titled items (remakes), the most rated: the one people usually mean."""
        counts = self.rating_counts()
        return max(ids, key=lambda i: (counts.get(i, 0), -int(i) if i.isdigit() else 0))

    def resolve(self, ref: str) -> str:
        """An item id from an id or a title (exact, then close matches); InputError names candidates."""
        ref = ref.strip()
        if ref in self.items:
            return ref
        key = normalise(ref)
        if key in self.by_form:
            return self._pick(self.by_form[key])
        close = get_close_matches(key, list(self.by_form), n=3, cutoff=0.85)
        if close:
            return self._pick(self.by_form[close[0]])
        near = get_close_matches(key, list(self.by_form), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(self.label(self.by_form[n][0])) for n in near)}?" if near else ""
        raise InputError(f"no {self.words.noun} called {ref!r} in the catalog{hint}")

    def find_title(self, message: str) -> str | None:
        """The id of the longest catalog title named in a message, or None.

        Quoted text is taken as a title first. Unquoted, a title must be written as one (its words
        capitalised: "I loved Heat") or follow a cue ("more like toy story"), so that ordinary words
        ("toys", "the crew", "a road trip movie") are not read as the films of that name.
        """
        for quoted in re.findall(r"[\"“']([^\"”']{2,80})[\"”']", message):
            if normalise(quoted) in self.by_form:
                return self._pick(self.by_form[normalise(quoted)])
        cased = _WORD.findall(ascii_fold(message))
        words = [w.lower() for w in cased]
        for n in range(min(8, len(words)), 0, -1):
            for start in range(len(words) - n + 1):
                form = " ".join(words[start:start + n])
                if form in self.message_forms and _named(cased[start:start + n], words[:start]):
                    return self._pick(self.by_form[form])
        return None

    def title_on_image(self, text: str) -> str | None:
        """The item a poster's printed text names: all of it a title ("MATRIX"), else a title in it."""
        key = normalise(text)
        return self._pick(self.by_form[key]) if key in self.by_form else self.find_title(text)

    def label(self, item_id: str) -> str:
        item = self.items.get(item_id)
        if item is None:
            return item_id
        return f"{item.title} ({item.year})" if item.year else item.title

    def with_facet_values(self, facet: str, values) -> list[str]:
        """Ids of every item holding any of ``values`` in ``facet`` ("something lighter" avoids the
        horror and thriller genres); [] for no values."""
        wanted = set(values)
        if not wanted:
            return []
        return [i for i, item in self.items.items() if wanted & set(item.facets.get(facet, ()))]

    # --- users --------------------------------------------------------------------------------

    @functools.cached_property
    def _histories(self) -> dict[str, list[tuple[str, float | None]]]:
        """(item, rating or None) per user, oldest first; same-second events in item-id order."""
        if self.interactions is None or self.interactions.empty:
            return {}
        frame = self.interactions.sort_values(["user", "timestamp", "item"], kind="stable")
        ratings = [None if math.isnan(r) else float(r) for r in frame["rating"]]  # NaN: an implicit event
        histories: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
        for user, item, rating in zip(frame["user"], frame["item"], ratings, strict=True):
            histories[str(user)].append((str(item), rating))
        return dict(histories)

    def rating_counts(self) -> dict[str, int]:
        """Events per item: among same-titled items, the one people usually mean has most."""
        cache = self.__dict__.setdefault("_counts", {})
        if not cache and self.interactions is not None:
            cache.update(self.interactions["item"].astype(str).value_counts().to_dict())
        return cache

    def user_history(self, user: str) -> list[tuple[str, float | None]]:
        """(item id, rating or None) of everything the user interacted with, oldest first."""
        if self.interactions is None:
            raise InputError("no interactions log: user histories need [interactions] in the project file")
        if user not in self._histories:
            known = sorted(self._histories, key=lambda u: (len(u), u))[:3]
            raise InputError(f"unknown user {user!r}: known users are ids of the interactions log such as "
                             f"{', '.join(known)}")
        return self._histories[user]
