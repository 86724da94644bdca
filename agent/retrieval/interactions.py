"""The sequential leave-one-out protocol on any interactions log (MovieLens is one such log).

It follows the preprocessing behind LlamaRec's published table on ml-latest-small (every rating
is an interaction, items without metadata dropped, iterative 5-core, per-user order by (timestamp,
item id), last item = test, second-last = validation), so that our numbers can be set beside
theirs. Any change here changes every reported number: keep it boring and keep the tests that pin
it. Reading and validating the log is :mod:`agent.retrieval.events`; ranking users under the
protocol is evaluation and lives in eval.protocol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from agent.core.errors import InputError
from agent.core.project import Project
from agent.ingest.catalog import catalog_ids
from agent.retrieval.events import (
    InteractionsReport,
    LoadedInteractions,
    load_interactions,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["InteractionsReport", "LoadedInteractions", "Split", "SplitName", "kcore", "load_interactions",
           "make_split", "natural_key", "split_from_interactions", "split_with_report"]

SplitName = Literal["val", "test"]
_DIGITS = re.compile(r"(\d+)")


def kcore(df: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Keep only users and items with at least ``k`` interactions, repeating until nothing changes.

    One pass is not enough: dropping a rare item can push a user below ``k`` and vice versa. The
    fixed point is the unique largest subset in which every user and item has ``k`` interactions,
    so the order of removals does not matter. Counts are rows, i.e. one per (user, item) rating.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    while True:
        user_counts = df["user"].map(df["user"].value_counts())
        item_counts = df["item"].map(df["item"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return df.reset_index(drop=True)
        df = df[keep]


@dataclass(frozen=True)
class Split:
    """Leave-one-out split with dense ids.

    Dense ids are 0-based and assigned in natural order of the original string ids (digit runs
    compared as numbers, :func:`natural_key`), so for MovieLens ordering by dense item id is the
    same as ordering by movieId. Original ids are kept as strings, the form run files and the
    catalog use.
    """

    user_ids: list[str]  # dense user -> original user id
    item_ids: list[str]  # dense item -> original item id
    user_index: dict[str, int]  # original user id -> dense user
    item_index: dict[str, int]  # original item id -> dense item
    train: list[np.ndarray]  # per dense user, items in time order, without validation and test
    val: np.ndarray  # per dense user, the second-last item
    test: np.ndarray  # per dense user, the last item

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def history(self, user: int, split_name: SplitName) -> np.ndarray:
        """What the model may see when predicting ``split_name``'s target, in time order.

        Validation predicts from training only; test predicts from training + the validation item,
        so the test target is always the item right after the whole visible history.
        """
        if split_name == "val":
            return self.train[user]
        if split_name == "test":
            return np.append(self.train[user], self.val[user])
        raise ValueError(f"split_name must be 'val' or 'test', got {split_name!r}")

    def target(self, user: int, split_name: SplitName) -> int:
        """The one held-out item that ``split_name`` asks the model to rank first."""
        if split_name == "val":
            return int(self.val[user])
        if split_name == "test":
            return int(self.test[user])
        raise ValueError(f"split_name must be 'val' or 'test', got {split_name!r}")

    def stats(self) -> dict[str, int]:
        """Sizes to compare with the published protocol (610 users, 3,650 items, 90,274)."""
        interactions = sum(len(seq) for seq in self.train) + 2 * self.n_users
        return {"users": self.n_users, "items": self.n_items, "interactions": interactions}


def natural_key(value: str) -> tuple:
    """Sort key comparing digit runs as numbers: "ml2" < "ml10", and "9" < "10" as in MovieLens.
    The string itself breaks ties ("07" and "7"), so the order is total."""
    parts = _DIGITS.split(value)  # text, digits, text, ...: digits always at odd positions
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)), value


def split_from_interactions(df: pd.DataFrame) -> Split:
    """Leave-one-out split of an already filtered interaction frame (string ``user`` and ``item``,
    ``timestamp``).

    Ties in timestamp (MovieLens often stores several ratings in the same second) are broken by
    dense item id, i.e. natural id order, so the split is deterministic and independent of file order.
    """
    import pandas as pd

    user_col, item_col = df["user"].astype(str), df["item"].astype(str)  # a frame built by hand may hold ints
    users = sorted(user_col.unique().tolist(), key=natural_key)
    items = sorted(item_col.unique().tolist(), key=natural_key)
    dense = pd.DataFrame(
        {
            "user": pd.Categorical(user_col, categories=users).codes.astype(np.int64),
            "item": pd.Categorical(item_col, categories=items).codes.astype(np.int64),
            "timestamp": df["timestamp"].to_numpy(),
        }
    ).sort_values(["user", "timestamp", "item"], kind="stable")
    bounds = np.searchsorted(dense["user"].to_numpy(), np.arange(len(users) + 1))
    ordered = dense["item"].to_numpy()
    sequences = [ordered[bounds[u] : bounds[u + 1]] for u in range(len(users))]
    short = [users[u] for u, seq in enumerate(sequences) if len(seq) < 3]
    if short:
        raise ValueError(
            f"{len(short)} users have fewer than 3 interactions (e.g. user {short[0]}): "
            "leave-one-out needs training, validation and test items; apply kcore first"
        )
    return Split(
        user_ids=users,
        item_ids=items,
        user_index={u: i for i, u in enumerate(users)},
        item_index={m: i for i, m in enumerate(items)},
        train=[seq[:-2] for seq in sequences],
        val=np.array([seq[-2] for seq in sequences], dtype=np.int64),
        test=np.array([seq[-1] for seq in sequences], dtype=np.int64),
    )


def split_with_report(project: Project) -> tuple[Split, InteractionsReport]:
    """The protocol end to end on a project: the catalog's ids, the validated log, the
    ``min_count``-core, leave-one-out; and the report of the rows the log lost."""
    source = project.require_interactions()
    loaded = load_interactions(source, catalog_ids(project.catalog))
    kept = kcore(loaded.frame, k=source.min_count)
    if kept.empty:
        raise InputError(
            f"no interactions left for the protocol: {loaded.report.summary()}; after the {source.min_count}-core "
            "no user and item remain (lower min_count in [interactions], or check that item ids match the catalog's)"
        )
    try:
        return split_from_interactions(kept), loaded.report
    except ValueError as exc:  # only a core below 3 leaves users too short to split
        raise InputError(f"{exc} (min_count = {source.min_count} in [interactions]; use at least 3)") from None


def make_split(project: Project) -> Split:
    """The protocol end to end: catalog ids, load, ``min_count``-core, leave-one-out."""
    return split_with_report(project)[0]
