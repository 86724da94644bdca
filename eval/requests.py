"""A request benchmark: natural-language requests whose relevant items are derived from catalog facts.

The collaborative protocol cannot show what a reader of words adds, so this benchmark asks for
things in words ("a funny animated film about toys") and judges answers by MovieLens facts
(genres, user tags, plot descriptions, years). Relevance is a rule over the data, not a hand-picked
list of ids, so it is reproducible, auditable and does not favour the system its author had in
mind. The rule's exact semantics are in ``eval/data/README.md`` and in :func:`is_relevant`.
"""

from __future__ import annotations

import csv
import importlib.resources
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent.core.errors import InputError
from agent.core.io import NonBlankStr, iter_json_objects, validation_reason
from agent.core.progress import progress as progress_bars
from agent.ingest.catalog import Item, LoadedCatalog, load_movielens
from eval.metrics import PairedResult, bootstrap_ci, paired_test

DEFAULT_REQUESTS = Path(str(importlib.resources.files("eval") / "data" / "requests.jsonl"))
SPLITS = ("val", "test")
GENRES = "genres"
"""The facet the relevance rules' genres refer to (MovieLens genres)."""
Ranker = Callable[[str], Sequence[str]]

_KEYWORD = re.compile(r"^[\w][\w '&.-]*\*?$")


def _clean_keywords(values: list[str], field: str) -> tuple[str, ...]:
    out = []
    for value in values:
        value = " ".join(value.split()).lower()
        if not _KEYWORD.match(value):
            raise ValueError(
                f"{field} keyword {value!r} is not valid: use words, spaces, hyphens, apostrophes, "
                "'&' or '.', optionally ending in '*' (any word ending)"
            )
        out.append(value)
    if len(set(out)) != len(out):
        raise ValueError(f"{field} repeats a keyword")
    return tuple(out)


class Relevance(BaseModel):
    """Which catalog items answer a request (see :func:`is_relevant` for the exact rule)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    genres_all: tuple[str, ...] = Field((), description="The item must have every one of these genres.")
    genres_any: tuple[str, ...] = Field((), description="If given, the item must have at least one.")
    genres_none: tuple[str, ...] = Field((), description="The item must have none of these genres.")
    tags_any: tuple[str, ...] = Field((), description="Keywords matched against the item's user tags.")
    plot_any: tuple[str, ...] = Field((), description="Keywords matched against the item's plot text.")
    year_min: int | None = Field(None, ge=1800, le=2200, description="Release year at least this.")
    year_max: int | None = Field(None, ge=1800, le=2200, description="Release year at most this.")

    @field_validator("genres_all", "genres_any", "genres_none", mode="before")
    @classmethod
    def _genres(cls, value):
        if value is None:
            return ()
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError("must be a list of non-blank genre names")
        return tuple(v.strip() for v in value)

    @field_validator("tags_any", "plot_any", mode="before")
    @classmethod
    def _keywords(cls, value, info):
        if value is None:
            return ()
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError("must be a list of non-blank keywords")
        return _clean_keywords(list(value), info.field_name)

    @model_validator(mode="after")
    def _consistent(self):
        if not (self.genres_all or self.genres_any or self.tags_any or self.plot_any):
            raise ValueError(
                "relevance needs at least one of genres_all, genres_any, tags_any, plot_any "
                "(a rule on years or excluded genres alone matches far too much)"
            )
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise ValueError(f"year_min {self.year_min} is after year_max {self.year_max}")
        lowered = {g.lower() for g in self.genres_all} | {g.lower() for g in self.genres_any}
        clash = lowered & {g.lower() for g in self.genres_none}
        if clash:
            raise ValueError(f"genres {sorted(clash)} are both required and excluded")
        return self


class Request(BaseModel):
    """One benchmark request: what a person typed, which half it belongs to, and its relevance rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonBlankStr = Field(min_length=1, max_length=50)
    text: NonBlankStr = Field(min_length=3, max_length=1000)
    split: Literal["val", "test"]
    relevance: Relevance



def load_requests(path: Path = DEFAULT_REQUESTS) -> list[Request]:
    """Read a JSONL request file; every bad row is reported with its line number, then nothing loads.

    Unlike catalogs (where one bad row must not stop the rest), a benchmark with a silently dropped
    request would report numbers over a different set, so any bad row is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"request file not found: {path} (the bundled benchmark is {DEFAULT_REQUESTS})")
    requests: list[Request] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for line_no, row, problem in iter_json_objects(path):
        if problem is not None:
            errors.append(f"{path}:{line_no}: {problem}")
            continue
        try:
            request = Request.model_validate(row)
        except ValidationError as exc:
            errors.append(f"{path}:{line_no}: {validation_reason(exc)}")
            continue
        if request.id in seen:
            errors.append(f"{path}:{line_no}: duplicate id {request.id!r} (first on line {seen[request.id]})")
            continue
        seen[request.id] = line_no
        requests.append(request)
    if errors:
        shown = "\n".join(errors[:20]) + (f"\n... and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise InputError(f"{len(errors)} bad row(s) in {path}; fix them and rerun:\n{shown}")
    if not requests:
        raise InputError(f"no requests in {path}")
    return requests


def by_split(requests: Iterable[Request], split: str | None) -> list[Request]:
    """The requests of one half ('val' or 'test'); None keeps all."""
    if split is not None and split not in SPLITS:
        raise InputError(f"unknown request split {split!r}: use one of {', '.join(SPLITS)}")
    return [r for r in requests if split is None or r.split == split]


# --- relevance ----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def keyword_pattern(keyword: str) -> re.Pattern:
    """A keyword as a whole-word, case-insensitive pattern.

    A space matches any run of spaces or hyphens ('post apocalyptic' finds 'post-apocalyptic'); a
    trailing '*' matches any word ending ('dream*' finds 'dreams', 'dreaming', 'dreamlike').
    """
    stem = keyword.lower().strip()
    wildcard = stem.endswith("*")
    stem = stem.rstrip("*")
    body = r"[\s-]+".join(re.escape(word) for word in stem.split())
    if wildcard:
        body += r"\w*"
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def _any_match(keywords: tuple[str, ...], texts: Iterable[str]) -> bool:
    texts = list(texts)
    return any(keyword_pattern(k).search(t) for k in keywords for t in texts)


def is_relevant(item: Item, relevance: Relevance) -> bool:
    """True when the item satisfies every part of the rule.

    Genres (the facet "genres" of a MovieLens item) compare case-insensitively and exactly. Keywords: the item must match at least one of
    tags_any (against any single tag) or plot_any (against text["plot"]) when either list is given;
    an item without tags or plot cannot match that side. A year bound excludes items without a year.
    """
    genres = {g.lower() for g in item.facets.get(GENRES, ())}
    if any(g.lower() not in genres for g in relevance.genres_all):
        return False
    if relevance.genres_any and not any(g.lower() in genres for g in relevance.genres_any):
        return False
    if any(g.lower() in genres for g in relevance.genres_none):
        return False
    if relevance.year_min is not None and (item.year is None or item.year < relevance.year_min):
        return False
    if relevance.year_max is not None and (item.year is None or item.year > relevance.year_max):
        return False
    if relevance.tags_any or relevance.plot_any:
        if relevance.tags_any and _any_match(relevance.tags_any, item.tags):
            return True
        plot = item.text.get("plot")
        return bool(relevance.plot_any and plot and _any_match(relevance.plot_any, [plot]))
    return True


def _items(catalog: LoadedCatalog | Iterable[Item]) -> list[Item]:
    return list(catalog.items) if isinstance(catalog, LoadedCatalog) else list(catalog)


def load_relevance_catalog(movielens_dir: Path) -> list[Item]:
    """MovieLens items as the benchmark's judge sees them: every user tag, not only the top ones.

    ``load_movielens`` keeps each movie's 12 most-used tags so context cards stay short; the ground
    truth must not move when that display cap changes, so here each item gets all of its distinct
    tags from tags.csv (case-folded, most-used first). Systems under test keep using the catalog
    as loaded; only relevance is judged on this one. Ids are the same.
    """
    movielens_dir = Path(movielens_dir)
    loaded = load_movielens(movielens_dir)
    counts: dict[str, Counter] = defaultdict(Counter)
    tags_file = movielens_dir / "tags.csv"
    if tags_file.exists():
        with open(tags_file, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                tag = " ".join((row.get("tag") or "").split()).lower()
                if tag:
                    counts[row["movieId"]][tag] += 1
    return [
        item.model_copy(update={
            "tags": tuple(t for t, _ in sorted(counts[item.id].items(), key=lambda kv: (-kv[1], kv[0])))
        }) if item.id in counts else item
        for item in loaded.items
    ]


def relevant_items(request: Request, catalog: LoadedCatalog | Iterable[Item]) -> set[str]:
    """Ids of the catalog items that answer the request."""
    return {item.id for item in _items(catalog) if is_relevant(item, request.relevance)}


# --- metrics ------------------------------------------------------------------------------------


def _top(ranked: Sequence[str], k: int) -> list[str]:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = [str(i) for i in list(ranked)[:k]]
    if len(set(top)) != len(top):
        dupes = sorted({i for i in top if top.count(i) > 1})
        raise ValueError(f"a ranked list must not repeat ids; repeated in the top {k}: {dupes[:5]}")
    return top


def precision_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Relevant items in the top k, over k (a list shorter than k is penalised for the gap)."""
    return sum(1 for i in _top(ranked, k) if i in relevant) / k


def ndcg_at_k_binary(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """NDCG@k with gain 1 for a relevant item; the ideal ranking fills min(k, |relevant|) slots."""
    if not relevant:
        raise ValueError("NDCG is undefined for a request with no relevant items")
    dcg = sum(1.0 / np.log2(rank + 2) for rank, i in enumerate(_top(ranked, k)) if i in relevant)
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return float(dcg / ideal)


def metric_names(k: int) -> tuple[str, str]:
    return f"P@{k}", f"NDCG@{k}"


def evaluate_requests(
    requests: Sequence[Request],
    ranker: Ranker,
    catalog: LoadedCatalog | Iterable[Item],
    k: int = 10,
    *,
    progress: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Run ranker(text) -> ranked item ids on every request and score it against the derived relevance.

    Returns {"k", "n_requests", "splits", "metrics": {name: {"mean", "ci_low", "ci_high"}},
    "latency_s": {"p50", "mean"}, "per_request": [{"id", "split", "n_relevant", "P@k", "NDCG@k",
    "returned", "unknown_ids", "latency_s"}]}. Ids the ranker returns that are not in the catalog
    count as misses and are reported, since they mean the system and the catalog disagree.
    """
    if not requests:
        raise InputError("no requests to evaluate")
    items = _items(catalog)
    known = {item.id for item in items}
    iterator: Iterable[Request] = progress_bars(requests, "requests") if progress else requests
    rows = [_request_row(request, ranker, items, known, k) for request in iterator]
    latencies = np.array([r["latency_s"] for r in rows])
    return {
        "k": k,
        "n_requests": len(rows),
        "splits": sorted({r["split"] for r in rows}),
        "metrics": {name: _summary([r[name] for r in rows], n_boot, seed) for name in metric_names(k)},
        "latency_s": {"p50": float(np.median(latencies)), "mean": float(latencies.mean())},
        "per_request": rows,
    }


def _request_row(request: Request, ranker: Ranker, items: list[Item], known: set[str], k: int) -> dict:
    """One request ranked, timed and scored: a ``per_request`` row of :func:`evaluate_requests`."""
    p_name, n_name = metric_names(k)
    relevant = {item.id for item in items if is_relevant(item, request.relevance)}
    if not relevant:
        raise InputError(
            f"request {request.id!r} has no relevant item in this catalog: its rule matches nothing"
        )
    start = time.perf_counter()
    ranked = [str(i) for i in ranker(request.text)]
    elapsed = time.perf_counter() - start
    top = ranked[:k]
    return {
        "id": request.id,
        "split": request.split,
        "n_relevant": len(relevant),
        p_name: precision_at_k(top, relevant, k),
        n_name: ndcg_at_k_binary(top, relevant, k),
        "returned": len(ranked),
        "unknown_ids": sum(1 for i in top if i not in known),
        "latency_s": elapsed,
    }


def _summary(values: list[float], n_boot: int, seed: int) -> dict:
    """Mean and bootstrap confidence interval of one metric over the requests."""
    array = np.array(values)
    low, high = bootstrap_ci(array, n=n_boot, seed=seed)
    return {"mean": float(array.mean()), "ci_low": low, "ci_high": high}


def per_request_values(result: dict, metric: str) -> dict[str, float]:
    """request id -> value of one metric, from an :func:`evaluate_requests` result."""
    try:
        return {row["id"]: float(row[metric]) for row in result["per_request"]}
    except KeyError as exc:
        names = [k for k in result["per_request"][0] if "@" in k] if result.get("per_request") else []
        raise InputError(f"metric {metric!r} not in this result; it has {names}") from exc


def compare(result_a: dict, result_b: dict, metric: str = "NDCG@10", n: int = 10000, seed: int = 0) -> PairedResult:
    """Paired test of system a against b (difference a - b) over the same requests.

    Requests are aligned by id; results over different request sets are refused rather than
    silently intersected, since that would compare different benchmarks.
    """
    a = per_request_values(result_a, metric)
    b = per_request_values(result_b, metric)
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise InputError(
            f"results cover different requests (only in a: {only_a[:5]}, only in b: {only_b[:5]}); "
            "evaluate both systems on the same request file and split"
        )
    ids = sorted(a)
    return paired_test([a[i] for i in ids], [b[i] for i in ids], n=n, seed=seed)


def request_users(texts: Sequence[str], recommender, seed: int = 0) -> dict[str, str]:
    """One user per request text, a seeded sample of the recommender's protocol split (the users
    whose held-out test items the collaborative protocol scores), so a request comes with a real
    history that has nothing to do with it."""
    from eval.harness import sample_users

    split = recommender.retriever.split
    chosen = [split.user_ids[u] for u in sample_users(split.n_users, len(texts), seed)]
    return dict(zip(texts, chosen, strict=False))


def recommend_ranker(recommender, users: dict[str, str] | None = None, k: int = 10) -> Ranker:
    """The product path: text -> the ids of ``Recommender.recommend(query=text, understand=True)``,
    the call `recsage recommend --query TEXT` (and ``/v1/recommend``) makes; with ``users``, the
    text's user as well (`recommend --user U --query TEXT`)."""

    def rank(text: str) -> list[str]:
        user = None if users is None else users[text]
        return [str(item["id"]) for item in recommender.recommend(query=text, user=user, k=k,
                                                                  understand=True)["items"]]

    return rank
