"""Candidate retrieval: popularity, content (MiniLM card vectors), EASE, SASRec and their fusion.

Item vectors live in Chroma: the content vectors in the ``items`` collection written by ingest, the
SASRec item vectors in ``items_sasrec`` written by ``train-retriever``. A user vector is computed
from the history at query time, so a new interaction changes recommendations without retraining.
With a few thousand items, scoring every item exactly is faster than an ANN query and keeps the
fusion's per-user z-scores identical between evaluation and serving.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.core.config import Settings
from agent.core.errors import InputError, RecsageError
from agent.core.io import read_json
from agent.core.project import Project
from agent.ingest.store import TEXT_COLLECTION, Store, decode_facets
from agent.retrieval.ease import EaseModel, load_ease
from agent.retrieval.fusion import zscore
from agent.retrieval.events import InteractionsReport
from agent.retrieval.interactions import Split, split_with_report
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
    """What a pick must be: for each named facet one of its values (OR within a facet, AND across
    facets: genres Comedy or Drama, and brand Acme), and within the years."""

    facets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    year_min: int | None = None
    year_max: int | None = None

    def __post_init__(self):
        self.facets = {str(name): tuple(values) for name, values in (self.facets or {}).items() if values}

    def active(self) -> bool:
        return bool(self.facets) or self.year_min is not None or self.year_max is not None

    def keeps_facets(self, facets: Mapping[str, Iterable[str]]) -> bool:
        return all(set(values) & set(facets.get(name, ())) for name, values in self.facets.items())

    def keeps(self, facets: Mapping[str, Iterable[str]], year: int | None) -> bool:
        """Whether an item with these facets and year passes (an item without a year fails a year bound)."""
        if not self.keeps_facets(facets):
            return False
        if self.year_min is not None and (year is None or year < self.year_min):
            return False
        return not (self.year_max is not None and (year is None or year > self.year_max))

    def check(self, vocabulary: Mapping[str, set[str]]) -> None:
        """InputError for a facet the catalog lacks or a value none of its items has, listing the valid ones."""
        for name, values in self.facets.items():
            if name not in vocabulary:
                raise InputError(f"the catalog has no facet {name!r}; its facets: {', '.join(sorted(vocabulary)) or 'none'}")
            unknown = [v for v in values if v not in vocabulary[name]]
            if unknown:
                raise InputError(f"unknown {name} value(s) {unknown}; valid {name}: {', '.join(sorted(vocabulary[name]))}")


def facet_filters(genres: Iterable[str] = (), pairs: Iterable[str] = ()) -> dict[str, tuple[str, ...]]:
    """:attr:`Filters.facets` from ``--genre VALUE`` (shorthand for the facet "genres") and
    ``--facet NAME=VALUE`` options, each repeatable."""
    out: dict[str, list[str]] = {}
    named = [("genres", g) for g in genres]
    for pair in pairs:
        name, sep, value = str(pair).partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"--facet {pair!r}: write NAME=VALUE, e.g. --facet category=Shoes")
        named.append((name.strip(), value.strip()))
    for name, value in named:
        out.setdefault(name, [])
        if value not in out[name]:
            out[name].append(value)
    return {name: tuple(values) for name, values in out.items()}


@dataclass
class Candidate:
    id: str
    title: str
    year: int | None
    facets: dict[str, list[str]]
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
            f"{collection!r} collection: ingest the project's catalog into this store (`recsage ingest`), "
            "then rerun `recsage train-retriever`"
        )
    return np.asarray([by_id[i] for i in ids], dtype=np.float32)


class Retriever:
    """Scores every item of the interaction data for a history (dense item indices, time order)."""

    def __init__(self, store: Store, artifacts_dir: Path, split: Split, settings: Settings, *,
                 project: Project | None = None):
        self.store = store
        self.dir = Path(artifacts_dir) / RETRIEVER_DIR
        self.split = split
        self.settings = settings
        self.project = project
        """Only for messages: how to name the project in the command that fixes a problem."""
        self.data_report: InteractionsReport | None = None
        """What loading the interactions log skipped (set by :func:`open_retriever`)."""

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
        partial ingest): it has no facets or year, so it never passes a filter."""
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
    def item_facets(self) -> list[dict[str, tuple[str, ...]]]:
        return [decode_facets(m) for m in self.item_meta]

    @functools.cached_property
    def facet_vocabulary(self) -> dict[str, set[str]]:
        """Facet name -> every value the items have: what a filter may ask for."""
        vocabulary: dict[str, set[str]] = {}
        for facets in self.item_facets:
            for name, values in facets.items():
                vocabulary.setdefault(name, set()).update(values)
        return vocabulary

    def _require_trained(self) -> None:
        if not (self.dir / HYBRID_FILE).exists():
            command = self.project.command("train-retriever") if self.project else "recsage train-retriever"
            raise InputError(f"no trained retriever in {self.dir}: run `{command}` first")

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
                f"unknown user {user_id!r}: {self.split.n_users} users are known (user ids of the "
                f"interactions log, such as {self.split.user_ids[0]}); pass --history ID,ID,... for a new user"
            )
        user = self.split.user_index[user_id]
        return np.append(self.split.history(user, "test"), self.split.test[user])

    def filter_mask(self, filters: Filters) -> np.ndarray:
        """True for items that pass the filters; InputError for a facet value no item has."""
        self.check_filters(filters)
        return np.array([filters.keeps(facets, meta.get("year"))
                         for facets, meta in zip(self.item_facets, self.item_meta, strict=True)], dtype=bool)

    def check_filters(self, filters: Filters) -> None:
        """InputError for a facet or value the catalog does not have, listing the valid ones."""
        filters.check(self.facet_vocabulary)

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
                facets={k: list(v) for k, v in decode_facets(m).items()}, score=round(float(scores[i]), 6), rank=rank,
                sources={n: round(float(p[i]), 4) for n, p in parts.items()},
            ))
        return out, timings


def require_store(project: Project) -> None:
    """An embedded store must exist before serving or training: ingest makes it."""
    path = project.store.path
    if path is not None and not (Path(path) / "chroma.sqlite3").exists():
        raise InputError(f"no store at {path}: run `{project.command('ingest')}` first")


def open_project_store(project: Project) -> Store:
    """The project's Chroma: a `chroma run` server, or an embedded folder that ingest has made."""
    require_store(project)
    return Store(path=project.store.path, url=project.store.url)


def open_retriever(project: Project, settings: Settings) -> Retriever:
    """The project's retriever: its store, models in ``<artifacts>/retriever``, the protocol split of
    its interactions log."""
    project.require_interactions()
    store = open_project_store(project)
    split, report = split_with_report(project)
    retriever = Retriever(store, project.store.artifacts_dir, split, settings, project=project)
    retriever.data_report = report
    return retriever
