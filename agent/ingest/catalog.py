"""Catalog items and loaders (generic JSONL/CSV, MovieLens).

Loaders yield items and report rejected rows with file, line and reason; one bad row never stops
the rest.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.errors import InputError
from agent.core.io import NonBlankStr, iter_json_objects, validation_reason

Scalar = str | int | float | bool


class Item(BaseModel):
    """One catalog item: the facts recsage may cite about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonBlankStr = Field(min_length=1, max_length=200, description="Stable unique id (the store key).")
    title: NonBlankStr = Field(min_length=1, max_length=500)
    year: int | None = Field(None, ge=1800, le=2200)
    genres: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    people: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Role -> names, e.g. director, writer, cast."
    )
    text: dict[str, str] = Field(
        default_factory=dict, description="Free text fields, e.g. plot or description."
    )
    image: str | None = Field(None, description="Image path or http(s) URL (e.g. a poster).")
    audio: str | None = Field(None, description="Audio path (e.g. a trailer or a narration).")
    metadata: dict[str, Scalar] = Field(default_factory=dict)


@dataclass(frozen=True)
class RowError:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class LoadedCatalog:
    items: list[Item]
    rejected: list[RowError]


def _split_list(value) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in str(value).split("|") if v.strip())


_KNOWN = {"id", "title", "year", "genres", "tags", "people", "text", "image", "audio", "metadata"}


def _row_to_item(row: dict, base_dir: Path) -> Item:
    """Generic rows: known columns map to fields; other scalar columns become text or metadata."""
    data = {k: v for k, v in row.items() if k in _KNOWN and v not in (None, "")}
    extra = {k: v for k, v in row.items() if k not in _KNOWN and v not in (None, "")}
    if "id" in data:
        data["id"] = str(data["id"])
    for key in ("genres", "tags"):
        if key in data:
            data[key] = _split_list(data[key])
    if isinstance(data.get("people"), dict):
        data["people"] = {k: _split_list(v) for k, v in data["people"].items()}
    text = dict(data.get("text") or {})
    metadata = dict(data.get("metadata") or {})
    for key, value in extra.items():
        if key in ("description", "plot", "summary", "overview") and isinstance(value, str):
            text[key] = value
        else:
            metadata[key] = value
    data["text"], data["metadata"] = text, metadata
    for key in ("image", "audio"):
        value = data.get(key)
        if isinstance(value, str) and not value.startswith(("http://", "https://")):
            data[key] = str((base_dir / value).resolve()) if not Path(value).is_absolute() else value
    return Item(**data)


def load_catalog(path: Path) -> LoadedCatalog:
    """Load a JSONL (one object per line) or CSV catalog. Relative media paths are relative to it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"catalog file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise InputError(f"catalog must be .jsonl or .csv, got {path.name}")
    items: list[Item] = []
    rejected: list[RowError] = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, suffix, rejected):
        try:
            item = _row_to_item(row, path.parent)
        except ValidationError as exc:
            rejected.append(RowError(str(path), line, validation_reason(exc)))
            continue
        if item.id in seen:
            rejected.append(RowError(str(path), line, f"duplicate id {item.id!r} (first on line {seen[item.id]})"))
            continue
        seen[item.id] = line
        items.append(item)
    return LoadedCatalog(items, rejected)


def _rows(path: Path, suffix: str, rejected: list[RowError]) -> Iterator[tuple[int, dict]]:
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}
        return
    for line_no, row, problem in iter_json_objects(path):
        if problem is not None:
            rejected.append(RowError(str(path), line_no, problem))
            continue
        yield line_no, row


# --- MovieLens ----------------------------------------------------------------------------------

_YEAR = re.compile(r"\s*\((\d{4})\)\s*$")
MAX_TAGS = 12


def split_title_year(raw: str) -> tuple[str, int | None]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); MovieLens puts the year in the title."""
    match = _YEAR.search(raw)
    if not match:
        return raw.strip(), None
    return raw[: match.start()].strip(), int(match.group(1))


def _movielens_tags(path: Path) -> dict[str, tuple[str, ...]]:
    """Tags per movie, most-used first (case-folded), capped so cards stay short."""
    if not path.exists():
        return {}
    counts: dict[str, Counter] = defaultdict(Counter)
    spelling: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
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


def load_movielens(directory: Path, posters: Path | None = None) -> LoadedCatalog:
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
    tags = _movielens_tags(directory / "tags.csv")
    plots = _movielens_plots(directory / "plots.jsonl")
    links: dict[str, dict] = {}
    if (directory / "links.csv").exists():
        with open(directory / "links.csv", newline="", encoding="utf-8") as fh:
            links = {row["movieId"]: row for row in csv.DictReader(fh)}
    items: list[Item] = []
    rejected: list[RowError] = []
    with open(movies, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            try:
                items.append(_movielens_item(row, tags, plots, links, posters))
            except (ValidationError, KeyError, ValueError) as exc:
                reason = validation_reason(exc) if isinstance(exc, ValidationError) else repr(exc)
                rejected.append(RowError(str(movies), reader.line_num, reason))
    return LoadedCatalog(items, rejected)


def _movielens_item(row, tags, plots, links, posters: Path | None) -> Item:
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
    image = None
    if posters is not None and (Path(posters) / f"{movie_id}.jpg").exists():
        image = str((Path(posters) / f"{movie_id}.jpg").resolve())
    return Item(
        id=movie_id, title=title, year=year, genres=genres, tags=tags.get(movie_id, ()),
        people=people, text=text, image=image, metadata=metadata,
    )
