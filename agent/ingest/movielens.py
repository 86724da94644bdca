"""The MovieLens loader: movies.csv (+ tags.csv, links.csv, plots.jsonl when present; posters/<id>.jpg).

MovieLens puts the year in the title and tags and plots in side files, so it has its own loader;
its items are ordinary items (genres as the "genres" facet). Its cards must not change: their hash
decides re-ingestion of every existing store.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from pydantic import ValidationError

from agent.core.errors import InputError
from agent.core.io import validation_reason
from agent.ingest.item import (
    DEFAULT_MAX_FIELD_CHARS,
    Item,
    LoadedCatalog,
    RowError,
    Scalar,
)
from agent.ingest.media_refs import MediaRefused, confined_path
from agent.ingest.tables import csv_rows

_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
MAX_TAGS = 12


def split_title_year(raw: str) -> tuple[str, int | None]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); MovieLens puts the year in the title."""
    match = _YEAR.search(raw)
    if not match:
        return raw.strip(), None
    return raw[: match.start()].strip(), int(match.group(1))


def _movielens_tags(path: Path, max_field_chars: int) -> dict[str, tuple[str, ...]]:
    """Tags per movie, most-used first (case-folded), capped so cards stay short."""
    if not path.exists():
        return {}
    counts: dict[str, Counter] = defaultdict(Counter)
    spelling: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for _, row, problem in csv_rows(fh, max_field_chars):
            if problem is not None:
                continue  # a tag too long to be a tag: the movie keeps its other tags
            tag = (row.get("tag") or "").strip()
            if tag:
                counts[row["movieId"]][tag.lower()] += 1
                spelling.setdefault(tag.lower(), tag)
    return {
        movie: tuple(spelling[t] for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_TAGS])
        for movie, c in counts.items()
    }


def _movielens_plots(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    plots = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                plots[str(row["movieId"])] = row
    return plots


def load_movielens(directory: Path, posters: Path | None = None,
                   max_field_chars: int = DEFAULT_MAX_FIELD_CHARS) -> LoadedCatalog:
    """MovieLens movies.csv (+ tags.csv, links.csv, plots.jsonl when present; posters/<id>.jpg)."""
    directory = Path(directory)
    movies = directory / "movies.csv"
    if not movies.is_file():
        raise InputError(
            f"{movies} not found: --movielens must be a MovieLens folder (e.g. ml-latest-small); "
            "`recsage data fetch` downloads it with network access"
        )
    if posters is not None and not Path(posters).is_dir():
        raise InputError(f"--posters folder not found: {posters}")
    tags = _movielens_tags(directory / "tags.csv", max_field_chars)
    plots = _movielens_plots(directory / "plots.jsonl")
    links: dict[str, dict] = {}
    if (directory / "links.csv").exists():
        with open(directory / "links.csv", newline="", encoding="utf-8") as fh:
            links = {row["movieId"]: row for _, row, problem in csv_rows(fh, max_field_chars) if problem is None}
    items: list[Item] = []
    rejected: list[RowError] = []
    with open(movies, newline="", encoding="utf-8") as fh:
        for line, row, problem in csv_rows(fh, max_field_chars):
            if problem is not None:
                rejected.append(RowError(str(movies), line, problem))
                continue
            try:
                image, refused = _poster(posters, row["movieId"])
                items.append(_movielens_item(row, tags, plots, links, image))
            except (ValidationError, KeyError, ValueError) as exc:
                reason = validation_reason(exc) if isinstance(exc, ValidationError) else repr(exc)
                rejected.append(RowError(str(movies), line, reason))
                continue
            if refused:
                rejected.append(RowError(str(movies), line, refused, kept=True))
    return LoadedCatalog(items, rejected)


def _poster(posters: Path | None, movie_id: str) -> tuple[str | None, str | None]:
    """(path of posters/<movieId>.jpg if it exists inside the folder, why a poster was refused)."""
    if posters is None:
        return None, None
    try:
        path = confined_path(f"{movie_id}.jpg", posters, "poster")
    except MediaRefused as exc:
        return None, str(exc).replace("catalog's folder", "--posters folder")
    return (path if Path(path).is_file() else None), None


def _movielens_item(row, tags, plots, links, image: str | None) -> Item:
    movie_id = row["movieId"]
    title, year = split_title_year(row["title"])
    genres = tuple(g for g in row["genres"].split("|") if g and g != "(no genres listed)")
    plot = plots.get(movie_id, {})
    people = {
        role: tuple(plot[role]) for role in ("director", "writer", "cast") if plot.get(role)
    }
    text = {"plot": plot["description"]} if plot.get("description") else {}
    metadata: dict[str, Scalar] = {}
    link = links.get(movie_id, {})
    for key in ("imdbId", "tmdbId"):
        if link.get(key):
            metadata[key] = link[key]
    for key in ("runtime", "age_rating"):
        if plot.get(key):
            metadata[key] = plot[key]
    return Item(
        id=movie_id, title=title, year=year, facets={"genres": genres} if genres else {}, tags=tags.get(movie_id, ()),
        people=people, text=text, image=image, metadata=metadata,
    )
