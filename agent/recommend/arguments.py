"""The arguments of one recommendation call, checked and merged: how many items get an
explanation, what is refused, and how explicit arguments join a typed query's reading."""

from __future__ import annotations

from collections.abc import Sequence

from agent.core.errors import InputError
from agent.retrieval.retriever import Filters

MAX_EXPLAINED = 50
"""Explanations are one batched generation; more than this is a listing, not a recommendation."""


def explained_count(explain: bool | int, k: int) -> int:
    """How many of the top ``k`` items get an explanation: all (True), none (False) or the first N."""
    return k if explain is True else min(k, max(0, int(explain)))


def validate(k: int, explain: bool | int, filters: Filters | None) -> None:
    if not isinstance(k, int) or k <= 0:
        raise InputError(f"k must be a positive integer, got {k}")
    if explained_count(explain, k) > MAX_EXPLAINED:
        raise InputError(f"k={k} is too many to explain: use k <= {MAX_EXPLAINED} with explanations")
    if filters and filters.year_min is not None and filters.year_max is not None and filters.year_min > filters.year_max:
        raise InputError(f"year_min {filters.year_min} is after year_max {filters.year_max}")


def with_understood(understood: dict, query: str, filters: Filters | None, exclude: Sequence[str],
                     liked: Sequence[str], mentioned: Sequence[str]) -> tuple[str, Filters, list[str], list[str], list[str]]:
    """Explicit arguments joined with a query's reading: the query becomes the search words it was
    read as, facets and years given explicitly win over the ones read, exclusions and titles add up."""
    given = filters or Filters()
    merged = Filters({**understood.get("facets", {}), **given.facets},
                     given.year_min if given.year_min is not None else understood.get("year_min"),
                     given.year_max if given.year_max is not None else understood.get("year_max"))
    return (understood.get("query") or query, merged,
            list(dict.fromkeys([*map(str, exclude), *understood.get("exclude", ())])),
            list(dict.fromkeys([*map(str, liked), *understood.get("liked", ())])),
            list(dict.fromkeys([*map(str, mentioned), *understood.get("mentioned", ())])))
