"""Catalogs: any project's catalog as items (:func:`load_source`), and the item model they share.

A catalog is a table (JSON lines, CSV or parquet) read through the column mapping of the project
file's ``[catalog]`` (:mod:`agent.ingest.mapping`), or a MovieLens folder read by its own loader
(:mod:`agent.ingest.movielens`). ``ingest --catalog FILE`` is the table mechanism with recsage's own
field names. Loaders report rejected rows with file, line and reason; one bad row never stops the
rest. Media paths are confined to the catalog's folder (or the --posters folder); image and video
URLs are kept as metadata and never fetched (see README, catalog section).
"""

from __future__ import annotations

from pathlib import Path

from agent.core.errors import InputError
from agent.core.project import CatalogSource
from agent.ingest.item import (
    DEFAULT_MAX_FIELD_CHARS,
    Item,
    LoadedCatalog,
    RowError,
    Scalar,
    id_string,
    is_missing,
    split_list,
)
from agent.ingest.mapping import NATIVE, ColumnMap, load_mapped
from agent.ingest.media_refs import MediaRefused, confined_path
from agent.ingest.movielens import load_movielens, split_title_year
from agent.ingest.tables import check_table_file, csv_rows, format_of, read_table

__all__ = [
    "DEFAULT_MAX_FIELD_CHARS", "Item", "LoadedCatalog", "MediaRefused", "RowError", "Scalar", "catalog_ids",
    "confined_path", "csv_rows", "load_catalog", "load_movielens", "load_source", "split_list", "split_title_year",
]


def load_source(source: CatalogSource, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS) -> LoadedCatalog:
    """The items of a project's catalog, through its mapping (or the MovieLens loader)."""
    fmt = source.resolved_format()
    if fmt == "movielens":
        return load_movielens(source.path, source.posters, max_field_chars)
    return load_mapped(source.path, fmt, ColumnMap.of(source), max_field_chars)


def load_catalog(path: Path, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS) -> LoadedCatalog:
    """A catalog in recsage's own field names (``ingest --catalog FILE``): id, title, year, genres,
    tags, description/plot/summary/overview, image/audio/video, nested text/people/facets/metadata;
    any other scalar column becomes metadata."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"catalog file not found: {path}")
    return load_mapped(path, format_of(path, "catalog"), NATIVE, max_field_chars)


def catalog_ids(source: CatalogSource) -> set[str]:
    """The ids of a catalog, reading only its id column: which items interactions may name."""
    fmt = source.resolved_format()
    if fmt == "movielens":
        path, column = Path(source.path) / "movies.csv", "movieId"
        if not path.is_file():
            raise InputError(f"{path} not found: the MovieLens folder needs movies.csv")
        fmt = "csv"
    else:
        path, column = Path(source.path), source.id
    check_table_file(path, fmt, "catalog")
    table = read_table(path, fmt, max_field_chars=DEFAULT_MAX_FIELD_CHARS, only=(column,))
    table.require([column], "the catalog's id", "Set id in [catalog] of the project file.")
    return {id_string(row[column]) for _, row in table.rows if not is_missing(row.get(column))}
