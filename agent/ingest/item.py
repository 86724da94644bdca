"""The catalog item every loader produces, and the row errors loaders report.

Loaders live beside it (``mapping`` for any JSONL/CSV/parquet catalog, ``movielens``) and are
reached through ``agent.ingest.catalog``, which also re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from agent.core.config import Settings
from agent.core.io import NonBlankStr

Scalar = str | int | float | bool
DEFAULT_MAX_FIELD_CHARS = Settings.model_fields["catalog_max_field_chars"].default


class Item(BaseModel):
    """One catalog item: the facts recsage may cite about it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonBlankStr = Field(min_length=1, max_length=200, description="Stable unique id (the store key).")
    title: NonBlankStr = Field(min_length=1, max_length=500)
    year: int | None = Field(None, ge=1800, le=2200)
    facets: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Categorical fields by name, e.g. genres, or category and brand: filters and chat vocabulary.",
    )
    tags: tuple[str, ...] = ()
    people: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Role -> names, e.g. director, writer, cast."
    )
    text: dict[str, str] = Field(
        default_factory=dict, description="Free text fields, e.g. plot or description."
    )
    image: str | None = Field(None, description="Image path or http(s) URL (e.g. a poster).")
    audio: str | None = Field(None, description="Audio path (e.g. a trailer or a narration).")
    video: str | None = Field(None, description="Video path (e.g. a trailer or a product clip).")
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


def is_missing(value) -> bool:
    """None, an empty string or a NaN (how pandas and parquet spell an empty cell)."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def id_string(value) -> str:
    """An id as the string every stage uses: 7, 7.0 (a parquet integer column with gaps) and "7" agree."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def split_list(value) -> tuple[str, ...]:
    """A list cell, or a "|"-separated string, as stripped non-empty values."""
    if is_missing(value):
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(v.strip() for v in str(value).split("|") if v.strip())
