"""Rows of a table file (CSV, JSON lines or parquet) with their line numbers.

Catalogs and interaction logs both arrive as tables. A file that is not one (binary, another
encoding) is one clear InputError before any parser sees it; an unreadable row is a (line, reason)
and the rest of the file is read.
"""

from __future__ import annotations

import csv
import math
import operator
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.core.errors import InputError
from agent.core.io import iter_json_objects

TABLE_FORMATS = ("csv", "jsonl", "parquet")
SNIFF_BYTES = 8192
NOT_A_TABLE = "not a CSV/JSONL/parquet file"


@dataclass
class Table:
    path: Path
    columns: list[str]
    """The file's columns; for JSON lines every key some row has, in first-seen order."""
    rows: list[tuple[int, dict]] = field(default_factory=list)
    """(line, row); for parquet the line is the row's 1-based position."""
    errors: list[tuple[int, str]] = field(default_factory=list)
    """(line, reason) of rows that could not be read."""

    def require(self, wanted: Collection[str], what: str, fix: str) -> None:
        """InputError naming the ``wanted`` columns the file lacks altogether, and the ones it has."""
        missing = [c for c in dict.fromkeys(wanted) if c not in self.columns]
        if missing:
            have = ", ".join(repr(c) for c in self.columns) or "none"
            raise InputError(
                f"{self.path}: {what} names column(s) {', '.join(repr(c) for c in missing)} that the file does not "
                f"have; its columns are {have}. {fix}"
            )


def format_of(path: Path, what: str) -> str:
    """The table format a file's suffix names."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in TABLE_FORMATS:
        raise InputError(f"{what} must be a .csv, .jsonl or .parquet file, got {Path(path).name}")
    return suffix


def check_table_file(path: Path, fmt: str, what: str) -> None:
    """InputError unless ``path`` is a file whose first bytes fit ``fmt``: a binary file never
    reaches a parser (whose error would be a traceback or a page of garbage column names)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if fmt == "parquet":
        fits, why = head[:4] == b"PAR1", "no parquet header"
    else:
        fits, why = _looks_like_text(head)
    if not fits:
        raise InputError(f"{path} is {NOT_A_TABLE} ({why}); give the {what} as .csv, .jsonl or .parquet")


def _looks_like_text(head: bytes) -> tuple[bool, str]:
    if b"\x00" in head:
        return False, "it holds NUL bytes: a binary file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut at the end of the sample
            return False, f"not UTF-8 text (byte {exc.start})"
    return True, ""


def read_table(path: Path, fmt: str, max_field_chars: int, only: Collection[str] | None = None) -> Table:
    """Every row of a table file; ``only`` keeps just those columns of each row (memory, speed)."""
    path = Path(path)
    try:
        if fmt == "parquet":
            return _parquet_table(path, only)
        return _text_table(path, fmt, max_field_chars, only)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is {NOT_A_TABLE}: not UTF-8 text at byte {exc.start}") from None
    except csv.Error as exc:
        raise InputError(f"{path} is {NOT_A_TABLE}: {exc}") from None


def _text_table(path: Path, fmt: str, max_field_chars: int, only) -> Table:
    keep = set(only) if only is not None else None
    table = Table(path, [])
    if fmt == "csv":
        # utf-8-sig: a spreadsheet's byte-order mark must not become part of the first column's name
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv_rows(fh, max_field_chars, keep)
            _collect(table, reader, None)
        table.columns = list(reader.fieldnames or [])
        return table
    seen: dict[str, None] = {}
    for line, row, problem in iter_json_objects(path):
        if row is not None:
            seen.update(dict.fromkeys(row))
        _collect(table, [(line, row, problem)], keep)
    table.columns = list(seen)
    return table


def _collect(table: Table, rows, keep: set[str] | None) -> None:
    for line, row, problem in rows:
        if problem is not None:
            table.errors.append((line, problem))
        else:
            table.rows.append((line, row if keep is None else {k: v for k, v in row.items() if k in keep}))


def _parquet_table(path: Path, only) -> Table:
    import pyarrow as pa  # here, not at the top: only parquet files need it, and it is slow to import
    import pyarrow.parquet as pq

    try:
        columns = list(pq.read_schema(path).names)
        wanted = columns if only is None else [c for c in columns if c in set(only)]
        frame = pq.read_table(path, columns=wanted).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path} is {NOT_A_TABLE}: {exc}") from None
    return Table(path, columns, [(n, {k: _plain(v) for k, v in row.items()}) for n, row in enumerate(frame, start=1)])


def _plain(value):
    """A parquet float NaN reads as a missing value, as an empty CSV cell does."""
    return None if isinstance(value, float) and math.isnan(value) else value


class _CsvRows:
    """(line, row, problem) per CSV record, with the header in ``fieldnames`` once read."""

    def __init__(self, fh, max_field_chars: int, only: Collection[str] | None = None):
        self.fh, self.max_field_chars, self.only, self.fieldnames = fh, max_field_chars, only, None

    def __iter__(self) -> Iterator[tuple[int, dict, str | None]]:
        previous = csv.field_size_limit(sys.maxsize)
        try:
            reader = csv.reader(self.fh)
            self.fieldnames = next(reader, None) or []
            keep = [(i, name) for i, name in enumerate(self.fieldnames) if self.only is None or name in self.only]
            names, width = [name for _, name in keep], len(self.fieldnames)
            pick = operator.itemgetter(*[i for i, _ in keep]) if len(keep) > 1 else None
            for values in reader:
                if not values:
                    continue  # a blank line
                if max(map(len, values)) > self.max_field_chars:
                    yield reader.line_num, {}, self._too_long(values)
                elif pick is not None and len(values) >= width:  # the usual row: one C call
                    yield reader.line_num, dict(zip(names, pick(values))), None
                else:  # a short row lacks its last columns; values beyond the header are dropped
                    yield reader.line_num, {name: values[i] for i, name in keep if i < len(values)}, None
        finally:
            csv.field_size_limit(previous)

    def _too_long(self, values: list[str]) -> str:
        i, value = next((i, v) for i, v in enumerate(values) if len(v) > self.max_field_chars)
        name = self.fieldnames[i] if i < len(self.fieldnames) else f"#{i + 1}"
        return (f"field {name!r} is {len(value):,} characters, over the limit of {self.max_field_chars:,} "
                "(setting catalog_max_field_chars)")


def csv_rows(fh, max_field_chars: int, only: Collection[str] | None = None) -> _CsvRows:
    """(line, row, problem) per CSV record: a field over ``max_field_chars`` makes its row an error,
    never the whole file. Python's own field limit is lifted while reading, because after it trips
    the reader has lost its place inside the quoted field and would read its rest as rows.
    ``only`` keeps just those columns of each row."""
    return _CsvRows(fh, max_field_chars, only)
