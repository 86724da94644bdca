"""ReDial's "Title (Year)" -> a catalog item id, by normalised title and year.

ReDial names movies as people write them ("The Usual Suspects (1995)"); MovieLens moves articles
behind the title ("Usual Suspects, The") and adds alternative titles in brackets ("Twelve Monkeys
(a.k.a. 12 Monkeys)"). Both sides go through the chat catalog's :func:`agent.chat.catalog.title_forms`
/ :func:`agent.core.text.normalise`, plus the bracketed alternatives, which people also use. The year
must agree, or differ by one when no item has the exact year (a film's year differs by one between
countries' release dates, e.g. Black Hawk Down is 2001 in MovieLens, 2002 in ReDial); a name
without a year maps only when one catalog item has that title.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agent.chat.catalog import title_forms
from agent.core.text import normalise
from agent.ingest.catalog import Item
from agent.ingest.movielens import split_title_year

_BRACKETED = re.compile(r"\(([^)]*)\)")
_AKA = re.compile(r"^\s*a\.?k\.?a\.?\s+", re.IGNORECASE)


def catalog_forms(title: str) -> set[str]:
    """:func:`title_forms` plus the alternative titles a catalog title carries in brackets."""
    forms = set(title_forms(title))
    for alternative in _BRACKETED.findall(title):
        forms |= title_forms(_AKA.sub("", alternative))
    return forms


class TitleMapper:
    """Title forms and years of a catalog; :meth:`map` finds the item a ReDial name means."""

    def __init__(self, items: Iterable[Item], counts: Mapping[str, int] | None = None):
        """``counts``: events per item; among same-titled items of one year the most rated is
        the one people mean (as the chat catalog picks)."""
        self.counts = dict(counts or {})
        self.by_form_year: dict[tuple[str, int | None], list[str]] = defaultdict(list)
        self.by_form: dict[str, list[str]] = defaultdict(list)
        for item in items:
            for form in catalog_forms(item.title):
                self.by_form_year[(form, item.year)].append(item.id)
                self.by_form[form].append(item.id)

    def _pick(self, ids: list[str]) -> str:
        return max(ids, key=lambda i: (self.counts.get(i, 0), -int(i) if i.isdigit() else 0))

    def map(self, name: str) -> str | None:
        """The catalog id of a ReDial name ("Title (Year)"), or None when no item matches."""
        title, year = split_title_year(name)
        form = normalise(title)
        if not form:
            return None
        if year is not None:
            for candidate in (year, year - 1, year + 1):
                if ids := self.by_form_year.get((form, candidate)):
                    return self._pick(ids)
            return None
        ids = self.by_form.get(form, [])
        return ids[0] if len(set(ids)) == 1 else None


@dataclass(frozen=True)
class MappingReport:
    """How much of ReDial the catalog covers: distinct movies and mentions (first namings)."""

    movies: int
    movies_mapped: int
    mentions: int
    mentions_mapped: int

    def to_json(self) -> dict:
        return {"movies": self.movies, "movies_mapped": self.movies_mapped,
                "movies_share": self.movies_mapped / self.movies if self.movies else 0.0,
                "mentions": self.mentions, "mentions_mapped": self.mentions_mapped,
                "mentions_share": self.mentions_mapped / self.mentions if self.mentions else 0.0}


def mapping_report(names: Iterable[str], mapper: TitleMapper) -> MappingReport:
    """``names``: one ReDial "Title (Year)" per mention; distinct movies are distinct names."""
    names = list(names)
    mapped = {n: mapper.map(n) is not None for n in set(names)}
    return MappingReport(len(mapped), sum(mapped.values()), len(names), sum(mapped[n] for n in names))
