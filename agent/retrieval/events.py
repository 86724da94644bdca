"""Reading and validating an interactions log: who interacted with which item, when.

Any CSV, JSON lines or parquet file, with the columns the project file's ``[interactions]`` names.
Bad rows are counted per reason, the first few quoted as file:line: reason, and skipped; a file
that lacks a column altogether, or is not a table at all, is one InputError. The checks run on
whole columns (pandas), so MovieLens' 100,000 ratings load in about a second.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from agent.core.errors import InputError
from agent.core.project import InteractionsSource
from agent.ingest.item import DEFAULT_MAX_FIELD_CHARS, id_string, is_missing
from agent.ingest.tables import check_table_file, format_of, read_table

if TYPE_CHECKING:
    import pandas as pd

UNREADABLE = "unreadable row"
EMPTY = "empty user or item"
BAD_TIME = "unparseable time"
BAD_RATING = "bad rating"
BELOW_MIN = "rating below min_rating"
UNKNOWN = "unknown item"
DUPLICATE = "duplicate event (same user, item and time)"
REPEAT = "repeated (user, item) pair (the first is kept)"
REASONS = (UNREADABLE, EMPTY, BAD_TIME, BAD_RATING, BELOW_MIN, UNKNOWN, DUPLICATE, REPEAT)
EXAMPLES_PER_REASON = 3


@dataclass
class InteractionsReport:
    """What loading an interactions file kept and skipped, and why."""

    path: str
    rows: int = 0
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    """Rows skipped per reason (one of REASONS); each row counts once, under its first failing check."""
    examples: list[str] = field(default_factory=list)
    """The first few skipped rows of each reason, as "file:line: reason"."""

    def summary(self) -> str:
        line = f"{self.path}: {self.rows:,} rows, {self.kept:,} kept"
        if self.skipped:
            line += "; skipped " + ", ".join(f"{self.skipped[r]:,} {r}" for r in REASONS if self.skipped[r])
        return line


@dataclass
class LoadedInteractions:
    frame: pd.DataFrame
    """String ``user`` and ``item``, int64 ``timestamp`` (unix seconds), float ``rating`` (NaN without one)."""
    report: InteractionsReport


def load_interactions(source: InteractionsSource, known_items: set[str]) -> LoadedInteractions:
    """The valid events of an interactions file, in file order, and the report of what was skipped.

    Items outside ``known_items`` are dropped: an item we cannot describe cannot be carded,
    retrieved or explained. Only the first event of a (user, item) pair is kept, so leave-one-out
    never asks to predict an item already in the user's history.
    """
    import pandas as pd  # here, not at the top: serving imports Split, and pandas is slow to import

    path = source.path
    fmt = format_of(path, "interactions file")
    check_table_file(path, fmt, "interactions")
    wanted = [source.user, source.item, source.time] + ([source.rating] if source.rating else [])
    table = read_table(path, fmt, DEFAULT_MAX_FIELD_CHARS, only=wanted)
    if table.errors and not table.rows:
        line, reason = table.errors[0]
        raise InputError(f"{path} is not a CSV/JSONL/parquet file: no row could be read ({path}:{line}: {reason})")
    table.require(wanted, "[interactions] of the project file", "Fix the column names in [interactions].")
    columns = {name: [row.get(name) for _, row in table.rows] for name in dict.fromkeys(wanted)}
    events = pd.DataFrame({
        "user": _ids(columns[source.user]), "item": _ids(columns[source.item]),
        "timestamp": unix_seconds(columns[source.time]),
        "rating": _numbers(columns[source.rating]) if source.rating else np.full(len(table.rows), np.nan),
        "line": np.array([line for line, _ in table.rows], dtype=np.int64),
    })
    reasons = _reasons(events, source, known_items)
    report = _report(str(path), table.errors, events, reasons, columns, source)
    kept = events.loc[reasons == "", ["user", "item", "timestamp", "rating"]].reset_index(drop=True)
    kept["timestamp"] = kept["timestamp"].astype("int64")
    report.kept = len(kept)
    return LoadedInteractions(kept, report)


def _reasons(events: pd.DataFrame, source: InteractionsSource, known_items: set[str]) -> np.ndarray:
    """Per row, the first check it fails ("" for a row that passes them all)."""
    reasons = np.full(len(events), "", dtype=object)

    def mark(mask, reason: str) -> None:
        reasons[(reasons == "") & np.asarray(mask)] = reason

    mark((events["user"] == "") | (events["item"] == ""), EMPTY)
    mark(events["timestamp"].isna(), BAD_TIME)
    if source.rating:
        mark(events["rating"].isna(), BAD_RATING)
        if source.min_rating is not None:
            mark(events["rating"] < source.min_rating, BELOW_MIN)
    mark(~events["item"].isin(known_items), UNKNOWN)
    # among the rows still valid, in time order (file order within a second): a repeat of an
    # exact event is a duplicate; a later event of the same pair is a repeat
    valid = events[reasons == ""].sort_values(["timestamp", "line"], kind="stable")
    duplicate = valid.duplicated(["user", "item", "timestamp"])
    repeat = valid.duplicated(["user", "item"]) & ~duplicate
    reasons[valid.index[duplicate.to_numpy()]] = DUPLICATE
    reasons[valid.index[repeat.to_numpy()]] = REPEAT
    return reasons


def _report(path: str, unreadable, events, reasons: np.ndarray, columns: dict, source) -> InteractionsReport:
    report = InteractionsReport(path, rows=len(events) + len(unreadable))
    report.skipped.update({UNREADABLE: len(unreadable)} if unreadable else {})
    report.skipped.update(Counter(r for r in reasons if r))
    quoted = {UNREADABLE: [(line, f"{UNREADABLE}: {why}") for line, why in unreadable[:EXAMPLES_PER_REASON]]}
    detail = {EMPTY: None, BAD_TIME: source.time, BAD_RATING: source.rating, BELOW_MIN: source.rating,
              UNKNOWN: source.item, DUPLICATE: None, REPEAT: None}
    for reason, column in detail.items():
        rows = np.flatnonzero(reasons == reason)[:EXAMPLES_PER_REASON]
        quoted[reason] = [(int(events["line"].iat[i]),
                           reason if column is None else f"{reason} ({column} = {columns[column][i]!r})") for i in rows]
    for reason in REASONS:
        report.examples += [f"{path}:{line}: {text}" for line, text in quoted.get(reason, [])]
    return report


def _ids(values: list) -> list[str]:
    """Ids as strings ("" when missing), the same strings the catalog's ids become."""
    if all(type(v) is str for v in values):
        return [v.strip() for v in values]
    return ["" if is_missing(v) else id_string(v) for v in values]


def _numbers(values: list) -> np.ndarray:
    import pandas as pd

    return np.array(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce"), dtype=float)  # a writable copy


def unix_seconds(values: list) -> np.ndarray:
    """Whole unix seconds (as floats, NaN when unparseable) from unix seconds or ISO 8601 times; a
    time without a zone is UTC, and fractions of a second are dropped."""
    import pandas as pd

    seconds = _numbers(values)
    seconds[~np.isfinite(seconds)] = np.nan
    rest = [i for i in np.flatnonzero(np.isnan(seconds)) if not is_missing(values[i])]  # the non-numbers
    if rest:
        rest = np.asarray(rest)
        texts = pd.Series([_iso_text(values[i]) for i in rest], dtype=object)
        parsed = pd.to_datetime(texts, utc=True, errors="coerce", format="ISO8601")
        ok = parsed.notna().to_numpy()
        # whole seconds since the epoch, whatever resolution pandas chose for the parsed times
        since = (parsed[ok] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        seconds[rest[ok]] = since.to_numpy(dtype=float)
    return np.floor(seconds)


def _iso_text(value) -> str:
    """A time as ISO 8601 text; datetimes (a parquet timestamp column) through their own isoformat."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value).strip()
