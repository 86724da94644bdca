"""The project file: where a catalog, its interactions log, the store and the trained artefacts are.

``recsage.toml`` in the working directory (or ``--project FILE``) maps any catalog onto recsage's
fields, so a shop, a music or a podcast catalog run through the same commands as MovieLens.
MovieLens itself is one mapping (:func:`movielens_project`): its catalog through the MovieLens
loader (titles carry the year, tags and plots live in side files), its ratings.csv as a plain
interactions file. Paths in the file are relative to the file's folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from agent.core.config import ConfigBase, read_toml
from agent.core.errors import InputError

PROJECT_FILE = "recsage.toml"
CatalogFormat = Literal["auto", "jsonl", "csv", "parquet", "movielens"]
MEDIA_KINDS = ("image", "audio", "video")
FieldColumns = list[str] | dict[str, str]
"""Columns feeding a field group: a list (each field named as its column) or {field: column}."""


def field_columns(value: FieldColumns) -> tuple[tuple[str, str], ...]:
    """(field name, column) pairs of a text/facets/people mapping, in the order given."""
    if isinstance(value, dict):
        return tuple(value.items())
    return tuple((column, column) for column in value)


class CatalogSource(ConfigBase):
    """``[catalog]``: the catalog file and which of its columns is which recsage field."""

    path: Path = Field(description="Catalog file (.jsonl, .csv or .parquet), or a MovieLens folder with format = \"movielens\".")
    format: CatalogFormat = Field("auto", description="File format; \"auto\" goes by the file's suffix.")
    id: str = Field("id", min_length=1, description="Column holding the item's unique id (read as a string).")
    title: str = Field("title", min_length=1, description="Column holding the item's display title.")
    text: FieldColumns = Field(
        default_factory=list,
        description="Free-text columns (description, plot...), in card order; a table such as "
                    "{plot = \"about\"} names the card field apart from its column.",
    )
    facets: FieldColumns = Field(
        default_factory=list,
        description="Categorical columns (genres, category, brand): lists or \"|\"-separated strings; "
                    "they become filters and the chat's vocabulary. A table {genres = \"kind\"} names the facet.",
    )
    people: FieldColumns = Field(
        default_factory=list,
        description="Columns listing people (director, artist, cast); a table {director = \"made_by\"} names the role.",
    )
    tags: str | None = Field(
        None, description="Column of free-form tags (a list or \"|\"-separated): shown on the card, not used as filters."
    )
    year: str | None = Field(None, description="Column holding a year (integer).")
    date: str | None = Field(None, description="Column holding an ISO 8601 date; its year is the item's year.")
    image: str | None = Field(None, description="Column holding an image path (relative to the catalog) or URL.")
    audio: str | None = Field(None, description="Column holding an audio path (relative to the catalog).")
    video: str | None = Field(None, description="Column holding a video path (relative to the catalog) or URL.")
    posters: Path | None = Field(None, description="MovieLens only: folder of <movieId>.jpg posters.")
    noun: str | None = Field(
        None, min_length=1, description="What one item is called in the LLM prompts (\"product\", \"track\"); "
                                        "default \"movie\" for MovieLens, else \"item\"."
    )
    nouns: str | None = Field(None, min_length=1, description="The plural of noun; default: noun + \"s\".")
    verb: str | None = Field(
        None, min_length=1, description="The interaction in the past tense (\"bought\", \"listened to\"); "
                                        "default \"watched\" for MovieLens, else \"interacted with\"."
    )
    audience: str | None = Field(
        None, min_length=1, description="Who the recommendations are for (\"shopper\", \"listener\"); "
                                        "default \"viewer\" for MovieLens, else \"user\"."
    )

    @model_validator(mode="after")
    def _one_year_source(self):
        if self.year and self.date:
            raise ValueError("give either year or date, not both")
        return self

    def resolved_format(self) -> str:
        if self.format != "auto":
            return self.format
        suffix = self.path.suffix.lower().lstrip(".")
        if suffix in ("jsonl", "csv", "parquet"):
            return suffix
        if self.path.is_dir() and (self.path / "movies.csv").exists():
            return "movielens"
        raise InputError(
            f"cannot tell the catalog format of {self.path}: use a .jsonl, .csv or .parquet file, "
            "or set format in [catalog] of the project file"
        )


@dataclass(frozen=True)
class CatalogWords:
    """The catalog's own words for its items, as every LLM prompt says them (prompts/*.j2 take them
    as the variable ``words``). :meth:`for_catalog` is the one place they are decided."""

    noun: str
    nouns: str
    verb: str
    audience: str
    user_label: str = "user"
    """How a prompt names a user id ("MovieLens user 7"): not settable, it says where the ids come from."""

    @classmethod
    def for_catalog(cls, source: CatalogSource) -> CatalogWords:
        """The format's words (movie words for MovieLens, neutral ones otherwise), with those the
        project file sets in [catalog] instead; a noun without a plural gets noun + "s"."""
        base = MOVIE_WORDS if _is_movielens(source) else NEUTRAL_WORDS
        given = {key: getattr(source, key) for key in ("noun", "nouns", "verb", "audience")
                 if getattr(source, key) is not None}
        if "noun" in given and "nouns" not in given:
            given["nouns"] = given["noun"] + "s"
        return replace(base, **given)

    # Capitalised, as a template writes them at a line's start ("{{ words.Nouns }} like Heat:").
    @property
    def Noun(self) -> str:
        return _capital(self.noun)

    @property
    def Nouns(self) -> str:
        return _capital(self.nouns)

    @property
    def Verb(self) -> str:
        return _capital(self.verb)

    @property
    def a_noun(self) -> str:
        """The noun with its indefinite article: "a movie", "an item"."""
        return f"{indefinite_article(self.noun)} {self.noun}"

    @property
    def a_audience(self) -> str:
        return f"{indefinite_article(self.audience)} {self.audience}"

    @property
    def movie_examples(self) -> bool:
        """Whether the prompts' worked examples (Predator, The Matrix) fit: they are movies."""
        return self.noun == "movie"

    @property
    def vocabulary(self) -> frozenset[str]:
        """The words themselves, lower case: an explanation may use them as it uses "movie" or "item"."""
        return frozenset(f"{self.noun} {self.nouns} {self.verb} {self.audience}".lower().split())


MOVIE_WORDS = CatalogWords("movie", "movies", "watched", "viewer", user_label="MovieLens user")
NEUTRAL_WORDS = CatalogWords("item", "items", "interacted with", "user")


def _capital(word: str) -> str:
    return word[:1].upper() + word[1:]  # not str.capitalize: "TV show" stays "TV show"


def indefinite_article(word: str) -> str:
    """The indefinite article, guessed from the spelling: "an item", "a user", "a product"."""
    lower = word.lower()
    if lower[:1] in ("a", "e", "i", "o") or (lower[:1] == "u" and not lower.startswith(("us", "uni", "ut", "ur"))):
        return "an"
    return "a"


def _is_movielens(source: CatalogSource) -> bool:
    """A catalog whose format cannot be told (a MovieLens folder that moved away from a store that
    still serves it) says the neutral words rather than stopping a command that never reads it."""
    try:
        return source.resolved_format() == "movielens"
    except InputError:
        return False


class InteractionsSource(ConfigBase):
    """``[interactions]``: the event log (who interacted with what, when)."""

    path: Path = Field(description="Interactions file (.csv, .jsonl or .parquet).")
    user: str = Field("user", min_length=1, description="Column holding the user id (read as a string).")
    item: str = Field("item", min_length=1, description="Column holding the item id; must match the catalog's id.")
    time: str = Field("time", min_length=1, description="Column holding the time: unix seconds or ISO 8601.")
    rating: str | None = Field(None, description="Optional column holding an explicit rating.")
    min_rating: float | None = Field(
        None, description="Keep only events rated at least this (needs rating); unset keeps every event."
    )
    min_count: int = Field(5, ge=1, le=1000, description="k of the iterative k-core filter on users and items.")

    @model_validator(mode="after")
    def _threshold_needs_rating(self):
        if self.min_rating is not None and not self.rating:
            raise ValueError("min_rating needs the rating column: set rating = \"<column>\"")
        return self


class StoreTarget(ConfigBase):
    """``[store]``: the Chroma store (embedded folder or server URL) and the artefacts folder."""

    path: Path | None = Field(None, description="Embedded Chroma folder.")
    url: str | None = Field(None, description="URL of a `chroma run` server, instead of path.")
    artifacts: Path | None = Field(
        None, description="Folder of the trained retriever, adapters and run files (default: the store folder)."
    )

    @model_validator(mode="after")
    def _path_or_url(self):
        if self.path and self.url:
            raise ValueError("give either path or url, not both")
        if not self.path and not self.url:
            raise ValueError("give path (embedded Chroma folder) or url (a `chroma run` server)")
        return self

    @property
    def artifacts_dir(self) -> Path:
        """Where trained models live; a server store has no folder of its own, so it needs one named."""
        if self.artifacts is None and self.path is None:
            raise InputError(
                "the store is a Chroma server (url), so the trained retriever needs a folder: set "
                "artifacts in [store] of the project file, or pass --artifacts DIR"
            )
        return Path(self.artifacts or self.path)


class Project(ConfigBase):
    """A whole project file."""

    catalog: CatalogSource
    interactions: InteractionsSource | None = Field(None, description="Absent: no personalisation or training.")
    store: StoreTarget
    source: str = Field("(in memory)", description="Where this project came from, for messages.")

    @property
    def words(self) -> CatalogWords:
        """The catalog's words for its LLM prompts (:meth:`CatalogWords.for_catalog`)."""
        return CatalogWords.for_catalog(self.catalog)

    def require_interactions(self) -> InteractionsSource:
        if self.interactions is None:
            raise InputError(f"{self.source} has no [interactions] section: this command needs an interactions log")
        return self.interactions

    def command_args(self) -> str:
        """How a command line names this project, for messages that say what to run next: nothing
        for the working folder's recsage.toml, which every command finds by itself."""
        if self.source.startswith("--movielens"):
            where = (f"--store {self.store.path}" if self.store.path
                     else f"--chroma-url {self.store.url} --artifacts {self.store.artifacts}")
            return f"{self.source} {where}"
        if self.source == "(in memory)":
            return "--project FILE"
        return "" if Path(self.source).resolve() == (Path.cwd() / PROJECT_FILE).resolve() else f"--project {self.source}"

    def command(self, name: str) -> str:
        """``recsage NAME`` with the arguments that name this project."""
        return " ".join(filter(None, ("recsage", name, self.command_args())))


def _relative_to(root: Path, data: dict) -> dict:
    """Paths of the file, relative to its folder, made absolute (a URL stays as it is)."""
    fixed = {}
    for section, keys in (("catalog", ("path", "posters")), ("interactions", ("path",)),
                          ("store", ("path", "artifacts"))):
        if isinstance(data.get(section), dict):
            part = dict(data[section])
            for key in keys:
                if isinstance(part.get(key), str):
                    part[key] = str((root / os.path.expanduser(part[key])).resolve())
            fixed[section] = part
    return {**data, **fixed}


def read_project(path: Path) -> Project:
    """A project file, validated, with its paths made absolute."""
    path = Path(path)
    data = _relative_to(path.resolve().parent, read_toml(path))
    return Project.from_mapping({**data, "source": str(path)}, source=str(path))


def find_project(explicit: Path | None = None, cwd: Path | None = None) -> Project | None:
    """``--project FILE`` if given, else ``recsage.toml`` in the working directory, else None."""
    if explicit is not None:
        if not Path(explicit).is_file():
            raise InputError(f"project file not found: {explicit} (`recsage init` writes one)")
        return read_project(explicit)
    local = Path(cwd or Path.cwd()) / PROJECT_FILE
    return read_project(local) if local.is_file() else None


def movielens_project(directory: Path, store: Path | None = None, url: str | None = None,
                      artifacts: Path | None = None, posters: Path | None = None) -> Project:
    """What ``--movielens DIR`` means: the MovieLens loader for the catalog, ratings.csv as interactions.

    Every rating is an interaction (no threshold), as in the published protocol."""
    directory = Path(directory)
    return Project(
        catalog=CatalogSource(path=directory, format="movielens", posters=posters),
        interactions=InteractionsSource(path=directory / "ratings.csv", user="userId", item="movieId",
                                        time="timestamp", rating="rating"),
        store=StoreTarget(path=store, url=url, artifacts=artifacts),
        source=f"--movielens {directory}",
    )


SECTIONS = ("catalog", "interactions", "store")


def toml_value(value) -> str:
    """One TOML value: strings and paths quoted (JSON escapes are valid TOML), lists, numbers, booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table: {plot = "about"}
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def _portable(path: Path, folder: Path) -> str:
    """A path as a project file in ``folder`` writes it: relative when inside the folder."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def project_toml(project: Project, folder: Path | None = None) -> str:
    """The project as a project file (read back by :func:`read_project`); with ``folder``, the paths
    inside it are written relative to it, so the file and its data can move together."""
    lines: list[str] = []
    for section in SECTIONS:
        part = getattr(project, section)
        if part is None:
            continue
        lines.append(f"[{section}]")
        for key, value in part.model_dump(exclude_none=True).items():
            if isinstance(value, Path) and folder is not None:
                value = _portable(value, folder)
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
