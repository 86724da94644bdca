"""The sequential leave-one-out protocol on MovieLens ml-latest-small.

It follows the preprocessing behind LlamaRec's published table (every rating is an interaction,
items without metadata dropped, iterative 5-core, per-user order by (timestamp, item id), last item
= test, second-last = validation), so that our numbers can be set beside theirs. Any change here
changes every reported number: keep it boring and keep the tests that pin it. Ranking users under
the protocol is evaluation and lives in eval.protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

SplitName = Literal["val", "test"]

COLUMNS = ["userId", "movieId", "rating", "timestamp"]


def load_interactions(movielens_dir: Path, min_rating: float = 0.0) -> pd.DataFrame:
    """Read ratings.csv as implicit interactions: who watched what, when.

    The published protocol treats every rating as an interaction (``min_rating`` 0), because a low
    rating still says the user chose to watch the film, which is what a next-item model predicts.
    Ratings of movies missing from movies.csv are dropped: an item we cannot describe cannot be
    carded, retrieved or explained, and the reference numbers were computed without them.
    Ids stay integers here so that sorting by item id is numeric, as in MovieLens itself.
    """
    import pandas as pd  # here, not at the top: serving imports Split, and pandas is slow to import

    movielens_dir = Path(movielens_dir)
    ratings_path, movies_path = movielens_dir / "ratings.csv", movielens_dir / "movies.csv"
    for path in (ratings_path, movies_path):
        if not path.exists():
            raise FileNotFoundError(
                f"{path} not found: point at an ml-latest-small folder (RECSAGE_DATA/ml-latest-small), "
                "or download it with `recsage data fetch`"
            )
    ratings = pd.read_csv(
        ratings_path,
        dtype={"userId": "int64", "movieId": "int64", "rating": "float64", "timestamp": "int64"},
    )
    missing = set(COLUMNS) - set(ratings.columns)
    if missing:
        raise ValueError(f"{ratings_path} lacks columns {sorted(missing)}; expected {COLUMNS}")
    known = pd.read_csv(movies_path, usecols=["movieId"], dtype={"movieId": "int64"})["movieId"]
    keep = ratings["movieId"].isin(known) & (ratings["rating"] >= min_rating)
    return ratings.loc[keep, COLUMNS].reset_index(drop=True)


def kcore(df: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Keep only users and items with at least ``k`` interactions, repeating until nothing changes.

    One pass is not enough: dropping a rare item can push a user below ``k`` and vice versa. The
    fixed point is the unique largest subset in which every user and item has ``k`` interactions,
    so the order of removals does not matter. Counts are rows, i.e. one per (user, item) rating.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    while True:
        user_counts = df["userId"].map(df["userId"].value_counts())
        item_counts = df["movieId"].map(df["movieId"].value_counts())
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return df.reset_index(drop=True)
        df = df[keep]


@dataclass(frozen=True)
class Split:
    """Leave-one-out split with dense ids.

    Dense ids are 0-based and assigned in ascending numeric order of the original MovieLens ids, so
    ordering by dense item id is the same as ordering by movieId. Original ids are kept as strings,
    the form run files and the catalog use.
    """

    user_ids: list[str]  # dense user -> original userId
    item_ids: list[str]  # dense item -> original movieId
    user_index: dict[str, int]  # original userId -> dense user
    item_index: dict[str, int]  # original movieId -> dense item
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


def split_from_interactions(df: pd.DataFrame) -> Split:
    """Leave-one-out split of an already filtered interaction frame.

    Ties in timestamp (MovieLens often stores several ratings in the same second) are broken by
    item id so the split is deterministic and independent of file order.
    """
    import pandas as pd

    users = np.sort(df["userId"].unique())
    items = np.sort(df["movieId"].unique())
    user_index = {str(u): i for i, u in enumerate(users)}
    item_index = {str(m): i for i, m in enumerate(items)}
    dense = pd.DataFrame(
        {
            "user": np.searchsorted(users, df["userId"].to_numpy()),
            "item": np.searchsorted(items, df["movieId"].to_numpy()),
            "timestamp": df["timestamp"].to_numpy(),
        }
    ).sort_values(["user", "timestamp", "item"], kind="stable")
    bounds = np.searchsorted(dense["user"].to_numpy(), np.arange(len(users) + 1))
    ordered = dense["item"].to_numpy()
    sequences = [ordered[bounds[u] : bounds[u + 1]] for u in range(len(users))]
    short = [str(users[u]) for u, seq in enumerate(sequences) if len(seq) < 3]
    if short:
        raise ValueError(
            f"{len(short)} users have fewer than 3 interactions (e.g. userId {short[0]}): "
            "leave-one-out needs training, validation and test items; apply kcore first"
        )
    return Split(
        user_ids=[str(u) for u in users],
        item_ids=[str(m) for m in items],
        user_index=user_index,
        item_index=item_index,
        train=[seq[:-2] for seq in sequences],
        val=np.array([seq[-2] for seq in sequences], dtype=np.int64),
        test=np.array([seq[-1] for seq in sequences], dtype=np.int64),
    )


def make_split(movielens_dir: Path, k: int = 5) -> Split:
    """The protocol end to end: load, ``k``-core, leave-one-out."""
    return split_from_interactions(kcore(load_interactions(movielens_dir), k=k))

