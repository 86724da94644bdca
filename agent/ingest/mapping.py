"""Any catalog table (JSON lines, CSV, parquet) to items, through a column mapping.

The project file's ``[catalog]`` says which column is which recsage field; ``ingest --catalog
FILE`` is the same mechanism with recsage's own field names (:data:`NATIVE`), where nested
``text``/``people``/``facets``/``metadata`` objects are read as those fields too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from pydantic import ValidationError

from agent.core.io import validation_reason
from agent.core.project import CatalogSource, field_columns
from agent.ingest.item import (
    Item,
    LoadedCatalog,
    RowError,
    Scalar,
    id_string,
    is_missing,
    split_list,
)
from agent.ingest.media_refs import MEDIA_KINDS, resolve_media
from agent.ingest.tables import Table, check_table_file, read_table

NESTED = ("text", "people", "facets", "metadata")
_YEAR_MONTH = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the table feeds which field of an item."""

    id: str
    title: str
    text: tuple[tuple[str, str], ...] = ()
    """(field name, column) pairs; likewise facets and people."""
    facets: tuple[tuple[str, str], ...] = ()
    people: tuple[tuple[str, str], ...] = ()
    tags: str | None = None
    year: str | None = None
    date: str | None = None
    media: tuple[tuple[str, str], ...] = ()
    """(kind, column) for image, audio, video."""
    nested: bool = False
    """recsage's own layout: ``text``/``people``/``facets``/``metadata`` columns hold objects."""
    optional: bool = False
    """The mapped columns may be missing from the file (the native layout names many optional ones)."""

    @classmethod
    def of(cls, source: CatalogSource) -> ColumnMap:
        return cls(
            id=source.id, title=source.title, text=field_columns(source.text), facets=field_columns(source.facets),
            people=field_columns(source.people), tags=source.tags, year=source.year, date=source.date,
            media=tuple((kind, getattr(source, kind)) for kind in MEDIA_KINDS if getattr(source, kind)),
        )

    def columns(self) -> list[str]:
        """Every column the mapping names, id first."""
        grouped = [column for _, column in (*self.text, *self.facets, *self.people)]
        named = [self.id, self.title, *grouped, self.tags, self.year, self.date]
        named += [column for _, column in self.media]
        named += list(NESTED) if self.nested else []
        return [c for c in dict.fromkeys(named) if c]


NATIVE = ColumnMap(
    id="id", title="title", text=field_columns(["description", "plot", "summary", "overview"]),
    facets=field_columns(["genres"]), tags="tags",
    year="year", media=tuple((kind, kind) for kind in MEDIA_KINDS), nested=True, optional=True,
)
"""``ingest --catalog FILE``: recsage's own field names, every one optional."""


def load_mapped(path: Path, fmt: str, mapping: ColumnMap, max_field_chars: int) -> LoadedCatalog:
    """Items of a catalog table. Rows that fail are reported (file:line:reason) and the rest load;
    media paths are relative to the file and may not leave its folder."""
    path = Path(path)
    check_table_file(path, fmt, "catalog")
    table = read_table(path, fmt, max_field_chars)
    if not mapping.optional:
        table.require(mapping.columns(), "[catalog] of the project file", "Fix the column names in [catalog].")
    rejected = [RowError(str(path), line, reason) for line, reason in table.errors]
    return LoadedCatalog(_items(table, mapping, rejected), rejected)


def _items(table: Table, mapping: ColumnMap, rejected: list[RowError]) -> list[Item]:
    items: list[Item] = []
    seen: dict[str, int] = {}
    file = str(table.path)
    for line, row in table.rows:
        try:
            item, problems = row_to_item(row, mapping, table.path.parent)
        except ValidationError as exc:
            rejected.append(RowError(file, line, validation_reason(exc)))
            continue
        except ValueError as exc:
            rejected.append(RowError(file, line, str(exc)))
            continue
        if item.id in seen:
            rejected.append(RowError(file, line, f"duplicate id {item.id!r} (first on line {seen[item.id]})"))
            continue
        seen[item.id] = line
        items.append(item)
        rejected.extend(RowError(file, line, reason, kept=True) for reason in problems)
    rejected.sort(key=lambda r: r.line)
    return items


def row_to_item(row: dict, mapping: ColumnMap, base_dir: Path) -> tuple[Item, list[str]]:
    """One row as an item, and the media references refused (the item is kept without them).
    Columns the mapping does not name become metadata when they hold a scalar."""
    row = {k: v for k, v in row.items() if not is_missing(v)}
    data: dict = {}
    if mapping.id in row:
        data["id"] = id_string(row[mapping.id])
    if mapping.title in row:
        title = row[mapping.title]
        data["title"] = str(title) if isinstance(title, int | float) else title
    if mapping.year and mapping.year in row:
        data["year"] = row[mapping.year]
    if mapping.date and mapping.date in row:
        data["year"] = year_of(row[mapping.date], mapping.date)
    if mapping.tags and mapping.tags in row:
        data["tags"] = split_list(row[mapping.tags])
    data.update({kind: row[column] for kind, column in mapping.media if column in row})
    parts = _nested_parts(row) if mapping.nested else {}
    text, people, facets, metadata = (parts.get(key, {}) for key in NESTED)
    if isinstance(text, dict):
        text.update({name: _text(row[c]) for name, c in mapping.text if c in row})
    for part, columns in ((facets, mapping.facets), (people, mapping.people)):
        if isinstance(part, dict):  # an empty list cell adds no facet or role
            part.update({name: values for name, c in columns if c in row and (values := split_list(row[c]))})
    named = set(mapping.columns())
    if isinstance(metadata, dict):
        metadata.update({k: v for k, v in row.items() if k not in named and isinstance(v, Scalar)})
    # a non-object nested part is left for the model to report as this row's error
    data.update(text=text, facets=facets, people=people, metadata=metadata)
    problems = resolve_media(data, metadata, base_dir) if isinstance(metadata, dict) else []
    return Item(**data), problems


def _nested_parts(row: dict) -> dict:
    """Copies of the row's nested objects (people and facets values as lists or "|" strings)."""
    parts = {key: dict(row[key]) if isinstance(row[key], dict) else row[key] for key in NESTED if key in row}
    for key in ("people", "facets"):
        if isinstance(parts.get(key), dict):
            parts[key] = {name: split_list(value) for name, value in parts[key].items()}
    return parts


def _text(value) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return value if isinstance(value, str) else str(value)


def year_of(value, column: str) -> int:
    """The year of an ISO 8601 date or date-time ("1995-07-14", "1995-07-14T10:00:00Z", "1995-07",
    "1995"), or of a date a parquet file stores as one."""
    if isinstance(value, date | datetime):
        return value.year
    text = str(value).strip()
    match = _YEAR_MONTH.match(text)
    if match and (match.group(2) is None or 1 <= int(match.group(2)) <= 12):
        return int(match.group(1))
    try:
        return datetime.fromisoformat(text).year
    except ValueError:
        raise ValueError(f"{column}: {text!r} is not an ISO 8601 date (e.g. 1995-07-14)") from None
