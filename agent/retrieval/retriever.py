"""Candidate retrieval: popularity, content (MiniLM card vectors), EASE, SASRec and their fusion.

Item vectors live in Chroma: the content vectors in the ``items`` collection written by ingest, the
SASRec item vectors in ``items_sasrec`` written by ``train-retriever``. A user vector is computed
from the history at query time, so a new interaction changes recommendations without retraining.
With a few thousand items, scoring every item exactly is faster than an ANN query and keeps the
fusion's per-user z-scores identical between evaluation and serving.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.core.config import Settings
from agent.core.errors import InputError, RecsageError
from agent.core.io import read_json
from agent.ingest.store import TEXT_COLLECTION, Store
from agent.retrieval.ease import EaseModel, load_ease
from agent.retrieval.fusion import zscore
from agent.retrieval.interactions import Split, make_split
from agent.retrieval.popularity import popularity_scores
from agent.retrieval.sasrec import SasrecModel, load_sasrec

SYSTEMS = ("popularity", "content", "ease", "sasrec", "hybrid")
SASREC_COLLECTION = "items_sasrec"
RETRIEVER_DIR = "retriever"
HYBRID_FILE = "hybrid.json"
CONTENT_RECENCY = (1.0, 0.5, 0.25)
"""Weights of the last three history items in the content user vector, most recent first."""
QUERY_WEIGHT = 1.0
"""Weight of a request's query vector (text / photo / voice note) in the fusion; not yet tuned on
a request benchmark, so a request clearly steers the candidates."""


@dataclass
class Filters:
    genres: tuple[str, ...] = ()  # keep items having at least one of these
    year_min: int | None = None
    year_max: int | None = None

    def active(self) -> bool:
        return bool(self.genres) or self.year_min is not None or self.year_max is not None


@dataclass
class Candidate:
    id: str
    title: str
    year: int | None
    genres: list[str]
    score: float
    rank: int
    sources: dict[str, float] = field(default_factory=dict)  # per-system z-scores


def _fetch_vectors(store: Store, collection: str, ids: list[str], missing_ok: bool = False) -> np.ndarray:
    """Vectors for ``ids`` in that order; a missing id is an error naming the command that fixes it,
    or, with ``missing_ok``, a zero vector (an item a partial ingest left out: it is never shown)."""
    got = store.collection(collection, create=False).get(ids=ids, include=["embeddings"])
    by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
    missing = [i for i in ids if i not in by_id]
    if missing and missing_ok and by_id:
        zero = np.zeros(len(next(iter(by_id.values()))), dtype=np.float32)
        return np.asarray([by_id.get(i, zero) for i in ids], dtype=np.float32)
    if missing:
        raise RecsageError(
            f"{len(missing)} items of the interaction data (e.g. {missing[:3]}) have no vector in the "
            f"{collection!r} collection: ingest the same MovieLens folder into this store, then "
            "rerun `recsage train-retriever`"
        )
    return np.asarray([by_id[i] for i in ids], dtype=np.float32)


class Retriever:
    """Scores every item of the interaction data for a history (dense item indices, time order)."""

    def __init__(self, store: Store, store_dir: Path, split: Split, settings: Settings):
        self.store = store
        self.dir = Path(store_dir) / RETRIEVER_DIR
        self.split = split
        self.settings = settings

    # --- components, loaded on first use ------------------------------------------------------

    @functools.cached_property
    def content_items(self) -> np.ndarray:
        # a store ingested with --limit holds some items of the interaction data: the others score 0
        return _fetch_vectors(self.store, TEXT_COLLECTION, self.split.item_ids, missing_ok=True)

    @functools.cached_property
    def sasrec(self) -> SasrecModel:
        self._require_trained()
        return load_sasrec(self.dir)

    @functools.cached_property
    def sasrec_items(self) -> np.ndarray:
        self._require_trained()
        return _fetch_vectors(self.store, SASREC_COLLECTION, self.split.item_ids)

    @functools.cached_property
    def ease(self) -> EaseModel:
        self._require_trained()
        return load_ease(self.dir)

    @functools.cached_property
    def weights(self) -> dict[str, float]:
        self._require_trained()
        return read_json(self.dir / HYBRID_FILE)["weights"]

    @functools.cached_property
    def item_meta(self) -> list[dict]:
        """Stored metadata per item; ``{}`` for an item of the interaction data the store lacks (a
        partial ingest): it has no genres or year, so it never passes a filter."""
        got = self._stored_records
        return [got.get(i, {}) for i in self.split.item_ids]

    @functools.cached_property
    def stored(self) -> np.ndarray:
        """True for items the store holds: only those can be shown (they have a title and a card)."""
        return np.array([i in self._stored_records for i in self.split.item_ids], dtype=bool)

    @functools.cached_property
    def _stored_records(self) -> dict[str, dict]:
        """Metadata by id of the interaction data's items that the store holds."""
        return {i: record["metadata"] for i, record in self.store.get(self.split.item_ids).items()}

    @functools.cached_property
    def genres(self) -> list[set[str]]:
        return [set(json.loads(m.get("genres", "[]"))) for m in self.item_meta]

    def _require_trained(self) -> None:
        if not (self.dir / HYBRID_FILE).exists():
            raise InputError(
                f"no trained retriever in {self.dir}: run `recsage train-retriever --store "
                f"{self.dir.parent}` (about 10 minutes on 2 cores)"
            )

    # --- scores -------------------------------------------------------------------------------

    def popularity(self, split_name: str = "test") -> np.ndarray:
        """Interaction counts visible for ``split_name``: the same for every user, so computed once."""
        cache = self.__dict__.setdefault("_popularity", {})
        if split_name not in cache:
            cache[split_name] = popularity_scores(self.split, split_name)
        return cache[split_name]

    def content_user_vector(self, history: np.ndarray) -> np.ndarray:
        recent = history[::-1][: len(CONTENT_RECENCY)]
        weights = np.asarray(CONTENT_RECENCY[: len(recent)], dtype=np.float32)
        vector = weights @ self.content_items[recent]
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def scores(self, system: str, history: np.ndarray, split_name: str = "test",
               query_vector: np.ndarray | None = None) -> np.ndarray:
        """One score per item (higher is better); the caller masks the history."""
        if system == "popularity":
            return self.popularity(split_name)
        if system == "content":
            return self.content_items @ self.content_user_vector(history)
        if system == "ease":
            return self.ease.scores(history)
        if system == "sasrec":
            return self.sasrec_items @ self.sasrec.user_vector(history)
        if system == "hybrid":
            return self.hybrid(history, split_name, query_vector)[0]
        raise InputError(f"unknown system {system!r}; choose one of: {', '.join(SYSTEMS)}")

    def hybrid(self, history: np.ndarray, split_name: str = "test", query_vector: np.ndarray | None = None):
        """Weighted sum of per-user z-scores (weights chosen on validation) plus the request's query."""
        parts = {name: zscore(self.scores(name, history, split_name), history)
                 for name, w in self.weights.items() if w}
        weights = {n: w for n, w in self.weights.items() if w}
        if query_vector is not None:
            parts["query"] = zscore(self.content_items @ query_vector, history)
            weights["query"] = QUERY_WEIGHT
        fused = sum(weights[n] * parts[n] for n in parts)
        return fused, parts

    # --- serving ------------------------------------------------------------------------------

    def history_from_ids(self, item_ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """Dense history from catalog ids; ids outside the interaction data are returned apart."""
        known = [self.split.item_index[i] for i in item_ids if i in self.split.item_index]
        unknown = [i for i in item_ids if i not in self.split.item_index]
        return np.asarray(known, dtype=np.int64), unknown

    def user_history(self, user_id: str) -> np.ndarray:
        """Everything the user interacted with, in time order (train + validation + test)."""
        if user_id not in self.split.user_index:
            raise InputError(
                f"unknown user {user_id!r}: {self.split.n_users} users are known (MovieLens userId "
                f"such as {self.split.user_ids[0]}); pass --history ID,ID,... for a new user"
            )
        user = self.split.user_index[user_id]
        return np.append(self.split.history(user, "test"), self.split.test[user])

    def filter_mask(self, filters: Filters) -> np.ndarray:
        """True for items that pass the filters."""
        keep = np.ones(self.split.n_items, dtype=bool)
        if filters.genres:
            known = set().union(*self.genres)
            unknown = [g for g in filters.genres if g not in known]
            if unknown:
                raise InputError(f"unknown genre(s) {unknown}; valid genres: {', '.join(sorted(known))}")
            wanted = set(filters.genres)
            keep &= np.array([bool(g & wanted) for g in self.genres])
        years = np.array([m.get("year", -1) for m in self.item_meta])
        if filters.year_min is not None:
            keep &= years >= filters.year_min
        if filters.year_max is not None:
            keep &= (years <= filters.year_max) & (years >= 0)
        return keep

    def recommend(self, history: np.ndarray, k: int, system: str = "hybrid", filters: Filters | None = None,
                  query_vector: np.ndarray | None = None) -> tuple[list[Candidate], dict[str, float]]:
        """Top-k unseen items passing the filters, with per-stage seconds."""
        if len(history) == 0:
            raise InputError("the history is empty: give at least one known item id (or a --user)")
        if k <= 0:
            raise InputError(f"k must be a positive integer, got {k}")
        if k > self.split.n_items:
            raise InputError(f"k={k} is larger than the catalog the retriever ranks ({self.split.n_items} items)")
        timings: dict[str, float] = {}
        start = time.perf_counter()
        parts: dict[str, np.ndarray] = {}
        if system == "hybrid":
            scores, parts = self.hybrid(history, query_vector=query_vector)
        else:
            scores = self.scores(system, history, query_vector=query_vector)
        scores = np.asarray(scores, dtype=np.float64).copy()
        scores[history] = -np.inf
        scores[~self.stored] = -np.inf
        if filters is not None and filters.active():
            scores[~self.filter_mask(filters)] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]
        timings["score"] = time.perf_counter() - start
        start = time.perf_counter()
        ids = [self.split.item_ids[i] for i in top]
        meta = self.store.get(ids) if ids else {}  # fresh titles and facts from the store
        timings["fetch"] = time.perf_counter() - start
        out = []
        for rank, (i, item_id) in enumerate(zip(top, ids, strict=True), start=1):
            m = meta.get(item_id, {}).get("metadata", {})
            out.append(Candidate(
                id=item_id, title=m.get("title", ""), year=m.get("year"),
                genres=json.loads(m.get("genres", "[]")), score=round(float(scores[i]), 6), rank=rank,
                sources={n: round(float(p[i]), 4) for n, p in parts.items()},
            ))
        return out, timings


def open_retriever(store_dir: Path, movielens: Path, settings: Settings) -> Retriever:
    if store_dir is None:
        raise InputError("pass --store DIR: the retriever's models live beside the embedded store")
    if not (Path(movielens) / "ratings.csv").exists():
        raise InputError(f"{movielens}/ratings.csv not found: pass --movielens DIR (ml-latest-small)")
    return Retriever(Store(store_dir), Path(store_dir), make_split(Path(movielens)), settings)
