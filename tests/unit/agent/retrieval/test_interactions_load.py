"""Reading and validating interactions logs (agent.retrieval.events through load_interactions):
every skip reason, times, formats and the files that are refused as a whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from agent.core.errors import InputError
from agent.core.project import InteractionsSource
from agent.retrieval.events import (
    BAD_RATING,
    BAD_TIME,
    BELOW_MIN,
    DUPLICATE,
    EMPTY,
    REPEAT,
    UNKNOWN,
    UNREADABLE,
)
from agent.retrieval.interactions import load_interactions

KNOWN = {"p1", "p2", "p3"}
JAN_1_2020 = 1_577_836_800  # 2020-01-01T00:00:00Z in unix seconds


def _source(path, **kwargs) -> InteractionsSource:
    return InteractionsSource(path=path, **{"user": "user", "item": "item", "time": "time", **kwargs})


def test_each_bad_row_is_counted_once_under_its_reason_and_the_rest_loads(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "user,item,time,stars\n"
        "a,p1,100,5\n"                              # 2 kept
        "a,p2,2020-01-01T00:00:00Z,4\n"             # 3 kept
        ",p1,100,5\n"                               # 4 empty user
        "b,,100,5\n"                                # 5 empty item
        "b,p1,yesterday,5\n"                        # 6 unparseable time
        "b,p1,101,five\n"                           # 7 bad rating
        "b,p2,102,1\n"                              # 8 below min_rating 3
        "b,p9,103,5\n"                              # 9 unknown item
        "a,p1,100,5\n"                              # 10 duplicate of line 2
        "a,p2,2020-01-02T00:00:00+01:00,5\n"        # 11 a later event of (a, p2): a repeat
        "b,p3,104,\n"                               # 12 no rating: bad rating
        "b,p3,105,4.5\n"                            # 13 kept
    )
    loaded = load_interactions(_source(path, rating="stars", min_rating=3.0), KNOWN)
    frame, report = loaded.frame, loaded.report
    assert list(frame["user"]) == ["a", "a", "b"] and list(frame["item"]) == ["p1", "p2", "p3"]
    assert list(frame["timestamp"]) == [100, JAN_1_2020, 105] and list(frame["rating"]) == [5.0, 4.0, 4.5]
    assert report.rows == 12 and report.kept == 3
    assert report.skipped == {EMPTY: 2, BAD_TIME: 1, BAD_RATING: 2, BELOW_MIN: 1, UNKNOWN: 1, DUPLICATE: 1, REPEAT: 1}
    assert report.examples == [
        f"{path}:4: {EMPTY}", f"{path}:5: {EMPTY}",
        f"{path}:6: {BAD_TIME} (time = 'yesterday')",
        f"{path}:7: {BAD_RATING} (stars = 'five')", f"{path}:12: {BAD_RATING} (stars = '')",
        f"{path}:8: {BELOW_MIN} (stars = '1')",
        f"{path}:9: {UNKNOWN} (item = 'p9')",
        f"{path}:10: {DUPLICATE}", f"{path}:11: {REPEAT}",
    ]
    summary = report.summary()
    assert summary.startswith(f"{path}: 12 rows, 3 kept; skipped 2 {EMPTY}, 1 {BAD_TIME}, 2 {BAD_RATING}")
    assert f"1 {REPEAT}" in summary


def test_frame_types_and_no_rating_column(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("\ufeffuser,item,time\n7,p1,10\n7,p2,11\n", encoding="utf-8")  # with a spreadsheet's BOM
    frame = load_interactions(_source(path), KNOWN).frame
    assert list(frame.columns) == ["user", "item", "timestamp", "rating"]
    assert pd.api.types.is_string_dtype(frame["user"]) and pd.api.types.is_string_dtype(frame["item"])
    assert frame["timestamp"].dtype == np.int64 and frame["rating"].isna().all()
    assert list(frame["user"]) == ["7", "7"]


def test_the_first_event_of_a_pair_in_time_is_kept_whatever_the_file_order(tmp_path):
    # line 2 comes first in the file but later in time: it is the repeat
    path = tmp_path / "events.csv"
    path.write_text("user,item,time\nc,p1,200\nc,p1,150\nc,p2,150\n")
    loaded = load_interactions(_source(path), KNOWN)
    assert list(loaded.frame["timestamp"]) == [150, 150]
    assert loaded.report.examples == [f"{path}:2: {REPEAT}"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("1577836800", JAN_1_2020),
    ("1577836800.9", JAN_1_2020),                  # fractions of a second dropped
    ("2020-01-01T00:00:00Z", JAN_1_2020),
    ("2020-01-01T02:30:00+02:30", JAN_1_2020),     # an offset: the same instant
    ("2019-12-31T19:00:00-05:00", JAN_1_2020),
    ("2020-01-01T00:00:00", JAN_1_2020),           # no zone: UTC
    ("2020-01-01 00:00:00", JAN_1_2020),
    ("2020-01-01", JAN_1_2020),
    ("2020-01-01T00:00:59.999Z", JAN_1_2020 + 59),
])
def test_times_unix_seconds_or_iso_8601(tmp_path, text, seconds):
    path = tmp_path / "events.csv"
    path.write_text(f"user,item,time\na,p1,{text}\n")
    assert list(load_interactions(_source(path), KNOWN).frame["timestamp"]) == [seconds]


@pytest.mark.parametrize("text", ["yesterday", "2020-13-01", "inf", "nan", "2020-01-01T25:00:00"])
def test_unparseable_times_are_skipped(tmp_path, text):
    path = tmp_path / "events.csv"
    path.write_text(f"user,item,time\na,p1,{text}\na,p2,5\n")
    loaded = load_interactions(_source(path), KNOWN)
    assert list(loaded.frame["item"]) == ["p2"] and loaded.report.skipped == {BAD_TIME: 1}


def test_jsonl_with_numbers_a_bad_line_and_a_missing_key(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [json.dumps({"user": 7, "item": "p1", "time": 1577836800, "extra": [1, 2]}),
             "{not json",
             json.dumps({"user": 7, "item": "p2"}),  # no time
             json.dumps({"user": 8, "item": "p2", "time": "2020-01-01T00:00:00Z"})]
    path.write_text("\n".join(lines) + "\n")
    loaded = load_interactions(_source(path), KNOWN)
    assert list(loaded.frame["user"]) == ["7", "8"] and list(loaded.frame["timestamp"]) == [JAN_1_2020] * 2
    assert loaded.report.rows == 4 and loaded.report.skipped == {UNREADABLE: 1, BAD_TIME: 1}
    assert loaded.report.examples[0].startswith(f"{path}:2: {UNREADABLE}: invalid JSON")


def test_parquet_with_integer_ids_and_a_timestamp_column(tmp_path):
    path = tmp_path / "events.parquet"
    times = [datetime(2020, 1, 1, tzinfo=UTC), None, datetime(2020, 1, 1, 1, tzinfo=UTC)]
    pd.DataFrame({"who": [1, 1, 2], "sku": ["p1", "p2", "p3"], "at": pd.to_datetime(times, utc=True),
                  "stars": [4.0, 5.0, 2.0]}).to_parquet(path)
    loaded = load_interactions(_source(path, user="who", item="sku", time="at", rating="stars"), KNOWN)
    assert list(loaded.frame["user"]) == ["1", "2"] and list(loaded.frame["item"]) == ["p1", "p3"]
    assert list(loaded.frame["timestamp"]) == [JAN_1_2020, JAN_1_2020 + 3600]
    assert loaded.report.examples == [f"{path}:2: {BAD_TIME} (at = None)"]


def test_missing_columns_name_themselves_and_the_file_columns(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("customer,sku,ts\na,p1,1\n")
    with pytest.raises(InputError) as err:
        load_interactions(_source(path, user="customer", item="product", time="when"), KNOWN)
    message = str(err.value)
    assert "'product', 'when'" in message and "its columns are 'customer', 'sku', 'ts'" in message
    assert str(path) in message


@pytest.mark.parametrize(("name", "content"), [
    ("events.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))),
    ("events.jsonl", b"\xff\xfe\xfd garbage \xc3\x28" * 50),
    ("events.parquet", b"user,item,time\na,p1,1\n"),
])
def test_a_file_that_is_not_a_table_is_one_clear_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a CSV/JSONL/parquet file"):
        load_interactions(_source(path), KNOWN)


def test_bad_bytes_after_the_sniffed_start_are_still_one_clear_error(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"user,item,time\n" + b"a,p1,1\n" * 5000 + b"a,\xff\xfe,2\n")
    with pytest.raises(InputError, match="not a CSV/JSONL/parquet file: not UTF-8"):
        load_interactions(_source(path), KNOWN)


def test_jsonl_where_no_line_is_json_is_refused(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("hello\nworld\n")
    with pytest.raises(InputError, match="not a CSV/JSONL/parquet file: no row could be read.*:1: invalid JSON"):
        load_interactions(_source(path), KNOWN)


def test_a_missing_file_or_an_unknown_suffix(tmp_path):
    with pytest.raises(InputError, match="interactions file not found"):
        load_interactions(_source(tmp_path / "nope.csv"), KNOWN)
    (tmp_path / "events.txt").write_text("user,item,time\n")
    with pytest.raises(InputError, match=r"\.csv, \.jsonl or \.parquet"):
        load_interactions(_source(tmp_path / "events.txt"), KNOWN)
