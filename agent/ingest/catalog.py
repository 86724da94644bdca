"""Catalog items and loaders (generic JSONL/CSV, MovieLens).

Loaders yield items and report rejected rows with file, line and reason; one bad row never stops
the rest. Media paths are confined to the catalog's folder (or the --posters folder): a catalog
row may not make ingest or the poster route read any other file of the machine. Image URLs are
kept as the item's ``image_url`` metadata and never fetched (see README, catalog section).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.config import Settings
from agent.core.errors import InputError
from agent.core.io import NonBlankStr, iter_json_objects, validation_reason
from agent.ingest.images import is_url

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
    kept: bool = False
    """True when the row was loaded without the refused part (e.g. a media path outside the folder)."""

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
DEFAULT_MAX_FIELD_CHARS = Settings.model_fields["catalog_max_field_chars"].default


class MediaRefused(ValueError):
    """A media reference that must not be read; the row is kept without it."""


def confined_path(value: str, folder: Path, kind: str) -> str:
    """The absolute path of ``value`` (relative to ``folder``) if it lies inside ``folder`` once
    symlinks and ``..`` are resolved; MediaRefused otherwise (``~`` is not expanded: it is a name)."""
    root = Path(folder).resolve()
    try:
        target = (root / value).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        raise MediaRefused(f"{kind} path {value!r} cannot be resolved; media must be files in the catalog's folder") from None
    if not target.is_relative_to(root):
        raise MediaRefused(f"{kind} path {value!r} is outside the catalog's folder; the row is kept without it")
    return str(target)


def _media(data: dict, base_dir: Path) -> list[str]:
    """Resolve image/audio in place: URLs go to metadata (never fetched), paths stay in the folder."""
    problems = []
    for key in ("image", "audio"):
        value = data.get(key)
        if not isinstance(value, str):
            continue
        if is_url(value):
            data.pop(key)
            if key == "image":
                data["metadata"]["image_url"] = value
            else:
                problems.append(f"audio {value!r} is a URL; audio must be a file in the catalog's folder")
            continue
        try:
            data[key] = confined_path(value, base_dir, key)
        except MediaRefused as exc:
            data.pop(key)
            problems.append(str(exc))
    return problems


def _row_to_item(row: dict, base_dir: Path) -> tuple[Item, list[str]]:
    """Generic rows: known columns map to fields; other scalar columns become text or metadata.
    Returns the item and the media references refused (the item is kept without them)."""
    data = {k: v for k, v in row.items() if k in _KNOWN and v not in (None, "")}
    extra = {k: v for k, v in row.items() if k not in _KNOWN and v not in (None, "")}
    if "id" in data:
        data["id"] = str(data["id"])
    for key in ("genres", "tags"):
        if key in data:
            data[key] = _split_list(data[key])
    if isinstance(data.get("people"), dict):
        data["people"] = {k: _split_list(v) for k, v in data["people"].items()}
    # a non-object text/metadata is left for the model to report as this row's error
    text, metadata = (dict(v) if isinstance(v, dict) else v for v in (data.get("text", {}), data.get("metadata", {})))
    for key, value in extra.items():
        if key in ("description", "plot", "summary", "overview") and isinstance(value, str) and isinstance(text, dict):
            text[key] = value
        elif isinstance(metadata, dict):
            metadata[key] = value
    data["text"], data["metadata"] = text, metadata
    problems = _media(data, base_dir) if isinstance(metadata, dict) else []
    return Item(**data), problems


def load_catalog(path: Path, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS) -> LoadedCatalog:
    """Load a JSONL (one object per line) or CSV catalog. Relative media paths are relative to it,
    and no media path may leave its folder."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"catalog file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise InputError(f"catalog must be .jsonl or .csv, got {path.name}")
    items: list[Item] = []
    rejected: list[RowError] = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, suffix, rejected, max_field_chars):
        try:
            item, problems = _row_to_item(row, path.parent)
        except ValidationError as exc:
            rejected.append(RowError(str(path), line, validation_reason(exc)))
            continue
        if item.id in seen:
            rejected.append(RowError(str(path), line, f"duplicate id {item.id!r} (first on line {seen[item.id]})"))
            continue
        seen[item.id] = line
        items.append(item)
        rejected.extend(RowError(str(path), line, reason, kept=True) for reason in problems)
    return LoadedCatalog(items, rejected)


def _rows(path: Path, suffix: str, rejected: list[RowError], max_field_chars: int) -> Iterator[tuple[int, dict]]:
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            for line, row, problem in csv_rows(fh, max_field_chars):
                if problem is not None:
                    rejected.append(RowError(str(path), line, problem))
                    continue
                yield line, row
        return
    for line_no, row, problem in iter_json_objects(path):
        if problem is not None:
            rejected.append(RowError(str(path), line_no, problem))
            continue
        yield line_no, row


def csv_rows(fh, max_field_chars: int) -> Iterator[tuple[int, dict, str | None]]:
    """(line, row, problem) per CSV record: a field over ``max_field_chars`` makes its row an error,
    never the whole file. Python's own field limit is lifted while reading, because after it trips
    the reader has lost its place inside the quoted field and would read its rest as rows."""
    previous = csv.field_size_limit(sys.maxsize)
    try:
        reader = csv.DictReader(fh)
        for row in reader:
            row = {k: v for k, v in row.items() if k is not None}
            long = next((k for k, v in row.items() if isinstance(v, str) and len(v) > max_field_chars), None)
            if long is not None:
                yield reader.line_num, {}, (f"field {long!r} is {len(row[long]):,} characters, over the limit of "
                                            f"{max_field_chars:,} (setting catalog_max_field_chars)")
                continue
            yield reader.line_num, row, None
    finally:
        csv.field_size_limit(previous)


# --- MovieLens ----------------------------------------------------------------------------------

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
        id=movie_id, title=title, year=year, genres=genres, tags=tags.get(movie_id, ()),
        people=people, text=text, image=image, metadata=metadata,
    )
