"""Synthetic request-driven ranking examples made only from catalog facts.

A reranker that reads words must learn to match a request's words to an item's facts. The
examples here are requests written from one item's facts (a genre, a user tag, a cast member, a
director, a decade, a word of its plot) through varied templates; the item that produced the
request is the positive, items that satisfy every named fact are recorded as also relevant (never
negatives), and hard negatives are items that share some of the facts but not all (same genre,
other tags; same actor, other genre), so the model has to read all of the request.

Honesty towards the request benchmark (eval/data/requests.jsonl): a synthetic request is dropped
when its normalised text equals a benchmark text, or when its rule is a benchmark rule (same genre
set, and its tag or plot word is one of that request's keywords); items relevant to any benchmark
*test* request are used neither as positives nor as negatives. The data card beside the output
counts what was dropped and why.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.core.errors import InputError
from agent.core.io import write_json, write_jsonl
from agent.core.text import (
    normalise_unfolded,  # how request texts are compared with the benchmark's
)
from agent.ingest.catalog import Item, load_movielens

# which benchmark file to keep away from; tests point this at a small file
BENCHMARK_REQUESTS: Path | None = None

# tags that describe a user's list, not the film
_META_TAGS = {"in netflix queue", "bd-r", "bd-video", "dvd-video", "clv", "seen", "owned", "watched",
              "to see", "netflix", "imdb top 250", "erlend's dvds", "betamax"}
_TAG_SHAPE = re.compile(r"^[a-z][a-z' -]{2,28}[a-z]$")
_STOP = {"about", "above", "after", "again", "against", "along", "among", "another", "around", "away", "back", "because", "been", "before", "behind", "being", "below", "between", "beyond", "both", "bring", "brings", "comes", "could", "during", "each", "every", "final", "finds", "first", "from", "gets", "give", "gives", "goes", "going", "have", "having", "help", "helps", "into", "just", "last", "later", "learns", "life", "lives", "makes", "many", "more", "most", "much", "must", "never", "only", "other", "over", "own", "people", "same", "several", "should", "since", "some", "soon", "still", "such", "take", "takes", "than", "that", "their", "them", "then", "there", "these", "they", "this", "those", "through", "together", "tries", "turns", "under", "until", "upon", "very", "when", "where", "which", "while", "will", "with", "within", "without", "world", "would", "years", "young", "become", "becomes", "begins", "named", "whose", "what", "your", "yourself", "himself", "herself", "themselves", "across", "toward", "towards", "almost"}

Fact = tuple[str, str]  # (kind, value): genre, tag, actor, director, decade, plot


@dataclass(frozen=True)
class Template:
    name: str
    needs: tuple[str, ...]  # fact kinds, in the order the wordings use them
    wordings: tuple[str, ...]


TEMPLATES: tuple[Template, ...] = (
    Template("genre_tag", ("genre", "tag"), (
        "a {genre} film about {tag}",
        "{genre} movies with {tag}",
        "can you suggest a {genre} movie that's {tag}?",
        "I feel like watching some {genre} tonight, something with {tag}",
    )),
    Template("tag_actor", ("tag", "actor"), (
        "something {tag} with {actor}",
        "a {tag} movie starring {actor}",
        "what's a good {tag} film that {actor} is in?",
    )),
    Template("decade_genre_plot", ("decade", "genre", "plot"), (
        "I want a {decade}s {genre} movie where {plot} plays a part",
        "{decade}s {genre} involving {plot}",
        "looking for a {genre} film from the {decade}s, the story has to do with {plot}",
    )),
    Template("director_genre", ("director", "genre"), (
        "a {genre} movie directed by {director}",
        "{director} {genre}",
        "which {genre} films did {director} make? I'd like one",
    )),
    Template("actor_genre", ("actor", "genre"), (
        "{genre} starring {actor}, please",
        "a {genre} with {actor} in it",
        "I loved {actor} lately, any {genre} where they act?",
    )),
    Template("tag_decade", ("tag", "decade"), (
        "any {tag} films from the {decade}s?",
        "{tag}, {decade}s",
        "I'm after a movie from the {decade}s that people call {tag}",
    )),
    Template("plot_tag", ("tag", "plot"), (
        "recommend me something {tag}, ideally about {plot}",
        "a {tag} story with {plot} in it",
    )),
    Template("genre_plot_actor", ("genre", "plot", "actor"), (
        "I'm in the mood for a {genre} about {plot}, maybe with {actor}",
        "{genre}, {plot}, {actor}",
        "my friend said there's a {genre} with {actor} where {plot} is central to the plot; what could it be?",
    )),
    Template("genre_genre_tag", ("genre", "genre2", "tag"), (
        "looking for a {genre} {genre2} with {tag}",
        "a mix of {genre} and {genre2}, something {tag}",
    )),
)


def item_facts(item: Item) -> dict[str, list[str]]:
    """The facts a request may name about an item, by kind (values as they will be written)."""
    facts: dict[str, list[str]] = defaultdict(list)
    facts["genre"] = [g for g in item.facets.get("genres", ()) if g != "IMAX"]
    facts["tag"] = sorted({t.lower() for t in item.tags if _TAG_SHAPE.match(t.lower())
                           and t.lower() not in _META_TAGS and t.lower() not in item.title.lower()})
    facts["actor"] = list(item.people.get("cast", ()))[:4]
    facts["director"] = list(item.people.get("director", ()))[:2]
    if item.year:
        facts["decade"] = [str(item.year // 10 * 10)]
    plot = item.text.get("plot", "")
    if plot:
        title_words = set(normalise_unfolded(item.title).split())
        facts["plot"] = sorted({w for w in re.findall(r"\b[a-z]{6,}\b", plot)
                                if w not in _STOP and w not in title_words})
    return facts


def has_fact(item: Item, fact: Fact) -> bool:
    kind, value = fact
    if kind == "genre":
        return value in item.facets.get("genres", ())
    if kind == "tag":
        return value in {t.lower() for t in item.tags}
    if kind == "actor":
        return value in item.people.get("cast", ())
    if kind == "director":
        return value in item.people.get("director", ())
    if kind == "decade":
        return item.year is not None and str(item.year // 10 * 10) == value
    if kind == "plot":
        return bool(re.search(rf"\b{re.escape(value)}\b", item.text.get("plot", "").lower()))
    raise ValueError(f"unknown fact kind {kind!r}")


def _benchmark(movielens_dir: Path, requests_path: Path | None):
    """(normalised texts, rules, ids relevant to test requests) of the request benchmark."""
    from eval.requests import (
        DEFAULT_REQUESTS,
        load_relevance_catalog,
        load_requests,
        relevant_items,
    )

    path = Path(requests_path or BENCHMARK_REQUESTS or DEFAULT_REQUESTS)
    requests = load_requests(path)
    judge = load_relevance_catalog(movielens_dir)
    texts = {normalise_unfolded(r.text) for r in requests}
    rules = [({g.lower() for g in r.relevance.genres_all},
              tuple(r.relevance.tags_any) + tuple(r.relevance.plot_any)) for r in requests]
    test_items: set[str] = set()
    for r in requests:
        if r.split == "test":
            test_items |= relevant_items(r, judge)
    return path, texts, rules, test_items


def _rule_clash(facts: Sequence[Fact], rules) -> bool:
    """True when the facts restate a benchmark rule: same genres, and a keyword of that rule."""
    from eval.requests import keyword_pattern

    genres = {v.lower() for k, v in facts if k == "genre"}
    words = [v for k, v in facts if k in ("tag", "plot")]
    for rule_genres, keywords in rules:
        if genres != rule_genres:
            continue
        if not keywords and not words:
            return True
        if any(keyword_pattern(k).fullmatch(w) for k in keywords for w in words):
            return True
    return False


def _usable(pool: Sequence[Item], facts_of: dict[str, dict[str, list[str]]]) -> list[tuple[Template, Item]]:
    """Every (template, item) pair where the item has each fact kind the template needs."""
    return [(t, i) for t in TEMPLATES for i in pool
            if all(facts_of[i.id].get(k) for k in t.needs if k != "genre2")
            and (("genre2" not in t.needs) or len(facts_of[i.id].get("genre", [])) >= 2)]


def _write_request(template: Template, available: dict[str, list[str]],
                   rng: random.Random) -> tuple[list[Fact], int, str]:
    """(facts, wording index, request text): facts drawn from ``available``, filled into a wording."""
    chosen: dict[str, str] = {}
    for kind in template.needs:
        if kind == "genre2":
            chosen[kind] = rng.choice([g for g in available["genre"] if g != chosen["genre"]])
        else:
            chosen[kind] = rng.choice(available[kind])
    facts: list[Fact] = [("genre" if k == "genre2" else k, v) for k, v in chosen.items()]
    wording_index = rng.randrange(len(template.wordings))
    values = {k: (v.lower() if k in ("genre", "genre2") else v) for k, v in chosen.items()}
    text = template.wordings[wording_index].format(**values)
    text = text[0].upper() + text[1:] if rng.random() < 0.5 else text
    return facts, wording_index, text


def _relatives(pool: Sequence[Item], item: Item, facts: Sequence[Fact]) -> tuple[list[str], list[tuple[int, str]]]:
    """(ids with every fact, [(facts shared, id)] of items with some but not all) among ``pool``."""
    also, partial = [], []
    for other in pool:
        if other.id == item.id:
            continue
        hits = sum(has_fact(other, f) for f in facts)
        if hits == len(facts):
            also.append(other.id)
        elif hits:
            partial.append((hits, other.id))
    return also, partial


def _hard_negatives(partial: list[tuple[int, str]], n_negatives: int, rng: random.Random) -> list[str]:
    rng.shuffle(partial)
    partial.sort(key=lambda hp: -hp[0])  # most shared facts first, random among equals
    hardest = [i for _, i in partial[: max(n_negatives * 3, n_negatives)]]
    return rng.sample(hardest, n_negatives)


def build_request_examples(
    movielens_dir: str | Path,
    n: int,
    seed: int = 0,
    *,
    n_negatives: int = 7,
    requests_path: str | Path | None = None,
    report: dict | None = None,
) -> list[dict]:
    """``n`` rows {"request", "positive", "negatives", "template", "facts", "also_relevant"}.

    Deterministic for a (catalog, benchmark, n, seed). ``report``, when given, receives the counts
    and exclusions that :func:`write_examples` puts in the data card.
    """
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    movielens_dir = Path(movielens_dir)
    items = sorted(load_movielens(movielens_dir).items, key=lambda i: (len(i.id), i.id))
    bench_path, bench_texts, bench_rules, test_items = _benchmark(
        movielens_dir, Path(requests_path) if requests_path else None)
    pool = [i for i in items if i.id not in test_items]
    facts_of = {i.id: item_facts(i) for i in pool}
    rng = random.Random(seed)
    dropped: Counter = Counter()
    rows: list[dict] = []
    seen_requests: set[str] = set()
    usable = _usable(pool, facts_of)
    if not usable:
        raise InputError(f"no catalog item in {movielens_dir} has facts enough for any template")
    attempts = 0
    while len(rows) < n and attempts < 50 * n:
        attempts += 1
        template, item = usable[rng.randrange(len(usable))]
        facts, wording_index, text = _write_request(template, facts_of[item.id], rng)
        key = normalise_unfolded(text)
        drop = ("text equals a benchmark request" if key in bench_texts
                else "rule equals a benchmark rule" if _rule_clash(facts, bench_rules)
                else "duplicate synthetic request" if key in seen_requests else None)
        if drop is None:
            also, partial = _relatives(pool, item, facts)
            drop = "too few hard negatives" if len(partial) < n_negatives else None
        if drop is not None:
            dropped[drop] += 1
            continue
        seen_requests.add(key)
        rows.append({"request": text, "positive": item.id, "negatives": _hard_negatives(partial, n_negatives, rng),
                     "template": f"{template.name}/{wording_index}", "facts": [list(f) for f in facts],
                     "also_relevant": also})
    if report is not None:
        report.update({
            "seed": seed, "requested": n, "made": len(rows), "attempts": attempts, "catalog_items": len(items),
            "benchmark_file": str(bench_path), "benchmark_texts": len(bench_texts),
            "excluded_items_relevant_to_test_requests": len(test_items), "dropped": dict(dropped),
            "n_negatives": n_negatives,
        })
    return rows


def write_examples(rows: Sequence[dict], path: str | Path, report: dict | None = None) -> Path:
    """Write the JSONL rows and ``<name>.card.json`` beside them; returns the card's path."""
    path = Path(path)
    write_jsonl(path, rows)
    templates = Counter(r["template"].split("/")[0] for r in rows)
    card = {
        "what": "synthetic request-driven ranking examples made from catalog facts (finetune/rerank_data/requests.py)",
        "how": ("one item's facts (genre, user tag, cast, director, decade, plot word) filled into varied "
                "templates; positive = that item; also_relevant = other items with every named fact "
                "(never negatives); negatives = items sharing some but not all of the facts, most shared first"),
        "exclusions": ("requests whose normalised text equals a benchmark request, or whose genres equal a "
                       "benchmark rule's genres_all while its tag/plot word is one of that rule's keywords, are "
                       "dropped; items relevant to benchmark test requests are neither positives nor negatives"),
        "rows": len(rows),
        "distinct_positives": len({r["positive"] for r in rows}),
        "templates": dict(sorted(templates.items())),
        "wordings": {t.name: list(t.wordings) for t in TEMPLATES},
        "mean_request_words": (sum(len(r["request"].split()) for r in rows) / len(rows)) if rows else 0,
        **(report or {}),
    }
    card_path = path.with_name(path.stem + ".card.json")
    write_json(card_path, card)
    return card_path
