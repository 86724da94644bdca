"""Protocol pieces on tiny hand-made data: iterative k-core, natural id order, leave-one-out, and
the whole protocol on a project (reading and validating logs: test_interactions_load.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agent.core.errors import InputError
from agent.core.project import (
    CatalogSource,
    InteractionsSource,
    Project,
    StoreTarget,
    movielens_project,
)
from agent.ingest.catalog import catalog_ids
from agent.retrieval.interactions import (
    kcore,
    load_interactions,
    make_split,
    natural_key,
    split_from_interactions,
    split_with_report,
)
from tests.fakes.eval_data import frame


def _pairs(df: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(df["user"], df["item"], strict=True))


def test_kcore_needs_more_than_one_pass():
    # k=2. Pass 1: every user has 2 items; item 30 has 1 rating -> dropped.
    # That leaves user 3 with one item, so a second pass must drop user 3 too.
    df = frame([(1, 10, 0), (1, 20, 0), (2, 10, 0), (2, 20, 0), (3, 20, 0), (3, 30, 0)])
    out = kcore(df, k=2)
    assert _pairs(out) == {("1", "10"), ("1", "20"), ("2", "10"), ("2", "20")}


def test_kcore_cascade_can_empty_everything():
    # a chain: each removal exposes the next; nothing satisfies 2-core in the end
    df = frame([(1, 10, 0), (1, 20, 0), (2, 20, 0), (2, 30, 0), (3, 30, 0), (3, 40, 0)])
    assert kcore(df, k=2).empty


def test_kcore_result_meets_k_and_ignores_row_order():
    rng = np.random.default_rng(0)
    rows = {(int(u), int(m)) for u, m in zip(rng.integers(0, 40, 600), rng.integers(0, 60, 600))}
    df = frame([(u, m, 0) for u, m in sorted(rows)])
    out = kcore(df, k=5)
    assert not out.empty
    assert out["user"].value_counts().min() >= 5
    assert out["item"].value_counts().min() >= 5
    shuffled = kcore(df.sample(frac=1.0, random_state=1), k=5)
    assert _pairs(shuffled) == _pairs(out)


def test_split_orders_by_timestamp_then_numeric_item_id():
    # user 1: item 5 first, then 30, then 10 and 9 in the same second. Numeric id order puts 9
    # before 10 (string order would not), so 9 is validation and 10 is test.
    df = frame([(1, 10, 200), (1, 30, 100), (1, 9, 200), (1, 5, 50),
                (2, 30, 10), (2, 5, 10), (2, 9, 10)])
    split = split_from_interactions(df.sample(frac=1.0, random_state=0))
    assert split.item_ids == ["5", "9", "10", "30"]
    assert split.user_ids == ["1", "2"]

    def original(items):
        return [split.item_ids[i] for i in items]

    u1 = split.user_index["1"]
    assert original(split.train[u1]) == ["5", "30"]
    assert original([split.val[u1], split.test[u1]]) == ["9", "10"]
    u2 = split.user_index["2"]  # all in one second: pure item id order
    assert original(split.train[u2]) == ["5"]
    assert original([split.val[u2], split.test[u2]]) == ["9", "30"]


def test_history_for_validation_and_test():
    df = frame([(1, m, t) for t, m in enumerate([4, 3, 2, 1])])
    split = split_from_interactions(df)
    assert split.item_ids[split.target(0, "val")] == "2"
    assert split.item_ids[split.target(0, "test")] == "1"
    assert [split.item_ids[i] for i in split.history(0, "val")] == ["4", "3"]
    assert [split.item_ids[i] for i in split.history(0, "test")] == ["4", "3", "2"]
    with pytest.raises(ValueError, match="'val' or 'test'"):
        split.history(0, "train")


def test_index_maps_round_trip_and_stats():
    df = frame([(7, 100, 1), (7, 200, 2), (7, 300, 3), (9, 300, 1), (9, 100, 2), (9, 400, 3)])
    split = split_from_interactions(df)
    assert all(split.user_ids[i] == u for u, i in split.user_index.items())
    assert all(split.item_ids[i] == m for m, i in split.item_index.items())
    assert split.stats() == {"users": 2, "items": 4, "interactions": 6}


def test_users_too_short_for_leave_one_out_are_refused():
    with pytest.raises(ValueError, match="fewer than 3"):
        split_from_interactions(frame([(1, 1, 0), (1, 2, 1), (2, 1, 0), (2, 2, 1), (2, 3, 2)]))


def test_natural_order_compares_digit_runs_as_numbers():
    ids = ["ml10", "ml2", "b3c10", "ml1", "a", "ml02", "b3c9"]
    # letters first by text; then digit runs as numbers ("ml2" < "ml10"); "ml02" and "ml2" tie as
    # numbers and the string breaks the tie, so the order is total
    assert sorted(ids, key=natural_key) == ["a", "b3c9", "b3c10", "ml1", "ml02", "ml2", "ml10"]
    assert sorted(["10", "9", "100"], key=natural_key) == ["9", "10", "100"]  # MovieLens ids: numeric order


def test_split_of_prefixed_ids_breaks_time_ties_in_natural_order():
    # u1 rated ml10 and ml9 in the same second, last: natural order makes ml9 validation, ml10
    # test (plain string order would swap them, since "ml10" < "ml9")
    df = pd.DataFrame({"user": ["u1", "u1", "u1", "u1", "u10"] + ["u2"] * 3,
                       "item": ["ml30", "ml10", "ml9", "ml5", "ml5", "ml9", "ml30", "ml5"],
                       "timestamp": [100, 200, 200, 50, 1, 3, 2, 1], "rating": 1.0})
    split = split_from_interactions(df[df["user"] != "u10"])
    assert split.user_ids == ["u1", "u2"] and split.item_ids == ["ml5", "ml9", "ml10", "ml30"]
    u1 = split.user_index["u1"]
    assert [split.item_ids[i] for i in split.train[u1]] == ["ml5", "ml30"]
    assert (split.item_ids[split.val[u1]], split.item_ids[split.test[u1]]) == ("ml9", "ml10")


def _shop_project(tmp_path, events: str, min_count: int = 2) -> Project:
    (tmp_path / "catalog.jsonl").write_text("".join(f'{{"sku": "p{i}", "name": "P{i}"}}\n' for i in range(1, 6)))
    (tmp_path / "events.csv").write_text(events)
    return Project(catalog=CatalogSource(path=tmp_path / "catalog.jsonl", id="sku", title="name"),
                   interactions=InteractionsSource(path=tmp_path / "events.csv", user="who", item="sku", time="at",
                                                   min_count=min_count),
                   store=StoreTarget(path=tmp_path / "store"))


def test_make_split_on_a_project_loads_filters_and_splits(tmp_path):
    # a and b see p1..p3 (p3 twice: the repeat is dropped); c's only event is p9 (not in the
    # catalog) and d has one event: the 2-core keeps a and b, each with three items
    events = ("who,sku,at\n"
              "a,p1,2020-01-01T00:00:00Z\na,p2,2020-01-02T00:00:00Z\na,p3,2020-01-03T00:00:00Z\n"
              "a,p3,2020-01-04T00:00:00Z\n"
              "b,p3,1577836800\nb,p1,1577923200\nb,p2,1578009600\n"
              "c,p9,1\nd,p4,1\n")
    split, report = split_with_report(_shop_project(tmp_path, events))
    assert split.user_ids == ["a", "b"] and split.item_ids == ["p1", "p2", "p3"]
    assert split.stats() == {"users": 2, "items": 3, "interactions": 6}
    b = split.user_index["b"]
    assert [split.item_ids[i] for i in split.history(b, "test")] == ["p3", "p1"]
    assert split.item_ids[split.test[b]] == "p2"
    assert report.rows == 9 and report.kept == 7
    assert report.skipped == {"unknown item": 1, "repeated (user, item) pair (the first is kept)": 1}
    assert make_split(_shop_project(tmp_path, events)).item_ids == split.item_ids


def test_make_split_says_when_nothing_survives_the_core(tmp_path):
    with pytest.raises(InputError, match="no interactions left.*min_count"):
        make_split(_shop_project(tmp_path, "who,sku,at\na,p1,1\nb,p2,2\n", min_count=2))


def test_make_split_needs_an_interactions_section(tmp_path):
    project = _shop_project(tmp_path, "who,sku,at\n").model_copy(update={"interactions": None})
    with pytest.raises(InputError, match="no \\[interactions\\] section"):
        make_split(project)


def test_movielens_project_keeps_every_rating_of_a_known_movie(tmp_path):
    # the published protocol: low ratings are interactions too; movie 3 has no metadata
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A (1990),Drama\n2,B (1991),Comedy\n")
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,0.5,10\n1,2,5.0,11\n1,3,4.0,12\n")
    project = movielens_project(tmp_path, store=tmp_path / "store")
    assert catalog_ids(project.catalog) == {"1", "2"}
    loaded = load_interactions(project.interactions, catalog_ids(project.catalog))
    assert list(loaded.frame["item"]) == ["1", "2"] and list(loaded.frame["rating"]) == [0.5, 5.0]
    assert loaded.report.skipped == {"unknown item": 1}


def test_a_core_too_small_for_leave_one_out_is_an_input_error(tmp_path):
    # min_count 1 keeps user d with a single event: leave-one-out cannot split it
    events = "who,sku,at\na,p1,1\na,p2,2\na,p3,3\nd,p4,1\n"
    with pytest.raises(InputError, match="fewer than 3 interactions.*min_count = 1"):
        make_split(_shop_project(tmp_path, events, min_count=1))
