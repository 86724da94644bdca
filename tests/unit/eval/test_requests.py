"""The request benchmark: loading, relevance rules, metrics, evaluation and paired comparison."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from agent.core.errors import InputError
from agent.ingest.catalog import Item, load_movielens
from agent.retrieval.bm25 import bm25_ranker
from eval.requests import (
    DEFAULT_REQUESTS,
    Relevance,
    Request,
    by_split,
    compare,
    evaluate_requests,
    is_relevant,
    load_relevance_catalog,
    load_requests,
    ndcg_at_k_binary,
    precision_at_k,
    relevant_items,
)

DATA = Path(os.environ.get("RECSAGE_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def item(id_, genres=(), tags=(), plot=None, year=2000, title=None):
    return Item(id=id_, title=title or f"Movie {id_}", year=year, facets={"genres": tuple(genres)} if genres else {}, tags=tuple(tags),
                text={"plot": plot} if plot else {})


def rule(**kwargs) -> Relevance:
    return Relevance(**kwargs)


def row(**over):
    base = {"id": "r1", "text": "a film about dreams", "split": "val", "relevance": {"plot_any": ["dream*"]}}
    base.update(over)
    return base


def write(tmp_path, lines) -> Path:
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


# --- relevance semantics ------------------------------------------------------------------------


def test_genres_all_any_none():
    both = item("1", genres=["Animation", "Children"])
    one = item("2", genres=["Animation"])
    scary = item("3", genres=["Animation", "Children", "Horror"])
    assert is_relevant(both, rule(genres_all=["animation", "Children"]))  # case-insensitive
    assert not is_relevant(one, rule(genres_all=["Animation", "Children"]))
    assert is_relevant(one, rule(genres_any=["Children", "Animation"]))
    assert not is_relevant(item("4", genres=["Drama"]), rule(genres_any=["Children", "Animation"]))
    assert not is_relevant(scary, rule(genres_all=["Animation"], genres_none=["Horror"]))


def test_keywords_match_whole_words_in_tags_and_plots():
    war_tag = item("1", tags=["World War II"])
    star_wars = item("2", tags=["star wars"])
    assert is_relevant(war_tag, rule(tags_any=["war"]))
    assert not is_relevant(star_wars, rule(tags_any=["war"]))
    assert not is_relevant(item("3", plot="A warrior rises."), rule(plot_any=["war"]))
    assert is_relevant(item("4", plot="Set during the WAR, a nurse..."), rule(plot_any=["war"]))


def test_wildcard_phrases_and_hyphens():
    assert is_relevant(item("1", tags=["dreamlike"]), rule(tags_any=["dream*"]))
    assert is_relevant(item("2", plot="He enters people's dreams."), rule(plot_any=["dream*"]))
    assert not is_relevant(item("3", plot="A daydream."), rule(plot_any=["dream*"]))  # word start only
    assert is_relevant(item("4", tags=["post-apocalyptic"]), rule(tags_any=["post apocalyptic"]))
    assert is_relevant(item("5", plot="a serial  killer"), rule(plot_any=["serial killer"]))
    assert not is_relevant(item("6", plot="a killer of serials"), rule(plot_any=["serial killer"]))


def test_tags_or_plot_with_genres_and():
    relevance = rule(genres_all=["Sci-Fi"], tags_any=["time travel"], plot_any=["time machine"])
    assert is_relevant(item("1", genres=["Sci-Fi"], tags=["time travel"]), relevance)
    assert is_relevant(item("2", genres=["Sci-Fi"], plot="He builds a time machine."), relevance)
    assert not is_relevant(item("3", genres=["Comedy"], tags=["time travel"]), relevance)
    assert not is_relevant(item("4", genres=["Sci-Fi"]), relevance)  # no tags or plot: cannot match


def test_tags_do_not_match_plot_keywords_and_vice_versa():
    relevance = rule(tags_any=["pixar"], plot_any=["toy"])
    assert not is_relevant(item("1", tags=["toy"]), relevance)
    assert not is_relevant(item("2", plot="made by Pixar"), relevance)


def test_year_bounds_are_inclusive_and_exclude_unknown_years():
    relevance = rule(genres_all=["Film-Noir"], year_min=1940, year_max=1949)
    assert is_relevant(item("1", genres=["Film-Noir"], year=1940), relevance)
    assert is_relevant(item("2", genres=["Film-Noir"], year=1949), relevance)
    assert not is_relevant(item("3", genres=["Film-Noir"], year=1950), relevance)
    assert not is_relevant(item("4", genres=["Film-Noir"], year=None), relevance)


def test_title_is_never_evidence():
    assert not is_relevant(item("1", title="Dreamscape"), rule(tags_any=["dream*"], plot_any=["dream*"]))


def test_relevant_items_over_a_catalog():
    items = [item("1", genres=["Crime"], tags=["mafia"]), item("2", genres=["Crime"]),
             item("3", genres=["Crime"], plot="A mob boss retires.")]
    request = Request(id="q", text="mafia films", split="val",
                      relevance={"genres_all": ["Crime"], "tags_any": ["mafia"], "plot_any": ["mob"]})
    assert relevant_items(request, items) == {"1", "3"}


def test_relevance_catalog_keeps_every_tag_case_folded(tmp_path):
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,Heat (1995),Crime\n2,Up (2009),Animation\n")
    tags = [f"tag{n:02d}" for n in range(20)] + ["Heist", "heist"]
    (tmp_path / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n" + "".join(f"1,1,{t},0\n" for t in tags)
    )
    items = {i.id: i for i in load_relevance_catalog(tmp_path)}
    assert items["1"].tags[0] == "heist"  # used twice, case-folded into one
    assert set(items["1"].tags) == {t.lower() for t in tags}  # beyond the catalog's display cap
    assert items["2"].tags == () and items["1"].year == 1995
    assert load_movielens(tmp_path).items[0].tags != items["1"].tags  # the cap really applies there
    request = Request(id="h", text="heist", split="val", relevance={"tags_any": ["tag19"]})
    assert relevant_items(request, items.values()) == {"1"}


# --- loading ------------------------------------------------------------------------------------


def test_load_valid_file(tmp_path):
    path = write(tmp_path, [row(), "", row(id="r2", split="test", relevance={"genres_all": ["Drama"]})])
    requests = load_requests(path)
    assert [r.id for r in requests] == ["r1", "r2"]
    assert requests[0].relevance.plot_any == ("dream*",)
    assert [r.id for r in by_split(requests, "test")] == ["r2"]
    with pytest.raises(InputError, match="unknown request split"):
        by_split(requests, "train")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (row(split="train"), "split"),
        (row(extra=1), "extra"),
        (row(relevance={"genres_none": ["Horror"]}), "at least one of"),
        (row(relevance={"genres_all": ["Drama"], "year_min": 2000, "year_max": 1990}), "after year_max"),
        (row(relevance={"tags_any": ["war", "War"]}), "repeats"),
        (row(relevance={"tags_any": ["*dream"]}), "not valid"),
        (row(relevance={"genres_all": ["Drama"], "genres_none": ["drama"]}), "both required and excluded"),
        (row(relevance={"genres_all": "Drama"}), "list"),
        (row(relevance={"plot_any": ["dream"], "tag_any": ["x"]}), "tag_any"),
        (row(text="  "), "text"),
    ],
)
def test_bad_rows_name_the_line(tmp_path, bad, message):
    path = write(tmp_path, [row(id="ok"), bad])
    with pytest.raises(InputError, match=message) as err:
        load_requests(path)
    assert f"{path}:2:" in str(err.value)


def test_every_bad_row_is_reported_and_duplicates_point_at_the_first(tmp_path):
    path = write(tmp_path, [row(), row(), "{", row(id="r3", split="x")])
    with pytest.raises(InputError) as err:
        load_requests(path)
    text = str(err.value)
    assert "3 bad row(s)" in text
    assert f"{path}:2: duplicate id 'r1' (first on line 1)" in text
    assert f"{path}:3:" in text and f"{path}:4:" in text


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_requests(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="no requests"):
        load_requests(tmp_path / "empty.jsonl")


def test_bundled_file_loads_with_balanced_halves():
    requests = load_requests(DEFAULT_REQUESTS)
    assert len(requests) >= 50
    assert len(by_split(requests, "val")) == len(by_split(requests, "test"))


# --- metrics ------------------------------------------------------------------------------------


def test_precision_by_hand():
    relevant = {"a", "b", "c"}
    assert precision_at_k(["a", "x", "b", "y"], relevant, 4) == 0.5
    assert precision_at_k(["a", "x", "b", "y"], relevant, 2) == 0.5
    assert precision_at_k(["a", "b"], relevant, 10) == 0.2  # a short list pays for the gap
    assert precision_at_k([], relevant, 10) == 0.0


def test_ndcg_by_hand():
    relevant = {"a", "b", "c"}
    # hits at ranks 2 and 3; the ideal list fills all 3 slots
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert ndcg_at_k_binary(["x", "a", "b"], relevant, 3) == pytest.approx(expected)
    assert ndcg_at_k_binary(["c", "a", "b", "x"], relevant, 10) == pytest.approx(1.0)
    # one relevant item: the ideal DCG is 1 (min(k, |relevant|) = 1 slot)
    assert ndcg_at_k_binary(["x", "a"], {"a"}, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k_binary(["x", "y"], {"a"}, 10) == 0.0
    # beyond k does not count
    assert ndcg_at_k_binary(["x", "y", "a"], {"a"}, 2) == 0.0


def test_metric_errors():
    with pytest.raises(ValueError, match="repeat"):
        precision_at_k(["a", "a"], {"a"}, 10)
    with pytest.raises(ValueError, match="no relevant"):
        ndcg_at_k_binary(["a"], set(), 10)
    with pytest.raises(ValueError):
        precision_at_k(["a"], {"a"}, 0)


def test_metrics_agree_with_ranx():
    """ranx is the reference implementation; one call on purpose (it compiles with numba)."""
    import random

    import ranx  # a test dependency (extra "test"); missing it must fail, not skip

    rng = random.Random(3)
    pool = [f"i{n}" for n in range(40)]
    qrels, run, ours = {}, {}, {"precision@10": [], "ndcg@10": []}
    for q in range(25):
        relevant = set(rng.sample(pool, rng.randint(1, 15)))
        ranked = rng.sample(pool, rng.randint(5, 30))
        qrels[f"q{q}"] = {i: 1 for i in relevant}
        run[f"q{q}"] = {i: float(len(ranked) - r) for r, i in enumerate(ranked)}
        ours["precision@10"].append(precision_at_k(ranked, relevant, 10))
        ours["ndcg@10"].append(ndcg_at_k_binary(ranked, relevant, 10))
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["precision@10", "ndcg@10"])
    for name, values in ours.items():
        assert sum(values) / len(values) == pytest.approx(float(theirs[name]), abs=1e-6), name


# --- evaluation and comparison ------------------------------------------------------------------


CATALOG = [
    item("1", genres=["Sci-Fi"], tags=["time travel"]),
    item("2", genres=["Sci-Fi"], plot="A time machine breaks."),
    item("3", genres=["Sci-Fi"]),
    item("4", genres=["Crime"], tags=["mafia"]),
    item("5", genres=["Crime"], plot="The mob wants its money."),
]
REQUESTS = [
    Request(id="t", text="time travel", split="val",
            relevance={"genres_all": ["Sci-Fi"], "tags_any": ["time travel"], "plot_any": ["time machine"]}),
    Request(id="m", text="mafia", split="test", relevance={"tags_any": ["mafia"], "plot_any": ["mob"]}),
]


def test_evaluate_requests_per_request_and_means():
    answers = {"time travel": ["1", "3", "2"], "mafia": ["3", "zzz", "4"]}
    result = evaluate_requests(REQUESTS, lambda text: answers[text], CATALOG, k=3, n_boot=200)
    rows = {r["id"]: r for r in result["per_request"]}
    assert rows["t"]["n_relevant"] == 2 and rows["m"]["n_relevant"] == 2
    assert rows["t"]["P@3"] == pytest.approx(2 / 3)
    assert rows["m"]["P@3"] == pytest.approx(1 / 3)
    assert rows["m"]["NDCG@3"] == pytest.approx((1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert rows["m"]["unknown_ids"] == 1
    summary = result["metrics"]["P@3"]
    assert summary["mean"] == pytest.approx(0.5)
    assert summary["ci_low"] <= summary["mean"] <= summary["ci_high"]
    assert result["n_requests"] == 2 and result["splits"] == ["test", "val"]


def test_evaluate_refuses_a_request_that_matches_nothing():
    nothing = Request(id="x", text="westerns", split="val", relevance={"genres_all": ["Western"]})
    with pytest.raises(InputError, match="'x' has no relevant item"):
        evaluate_requests([nothing], lambda text: [], CATALOG)


def test_compare_is_paired_by_request_id():
    good = evaluate_requests(REQUESTS, lambda t: {"time travel": ["1", "2"], "mafia": ["4", "5"]}[t], CATALOG, k=2)
    bad = evaluate_requests(REQUESTS[::-1], lambda t: ["3"], CATALOG, k=2)
    result = compare(good, bad, "NDCG@2", n=500)
    assert result.mean_diff == pytest.approx(1.0)
    assert result.ci_low == pytest.approx(1.0)
    with pytest.raises(InputError, match="different requests"):
        compare(good, evaluate_requests(REQUESTS[:1], lambda t: ["3"], CATALOG, k=2), "NDCG@2")
    with pytest.raises(InputError, match="not in this result"):
        compare(good, bad, "NDCG@10")


# --- on the real catalog ------------------------------------------------------------------------


@pytest.mark.integration
def test_bundled_requests_on_the_real_catalog():
    movielens = DATA / "ml-latest-small"
    if not (movielens / "movies.csv").exists():
        pytest.fail(f"ml-latest-small not found in {DATA}: set RECSAGE_DATA or place ../shared/data")
    judge = load_relevance_catalog(movielens)
    requests = load_requests(DEFAULT_REQUESTS)
    sizes = {r.id: len(relevant_items(r, judge)) for r in requests}
    assert all(3 <= n <= 150 for n in sizes.values()), {k: v for k, v in sizes.items() if not 3 <= v <= 150}

    # the system sees the catalog as loaded (capped tags); relevance is judged on all facts
    catalog = load_movielens(movielens)
    result = evaluate_requests(requests, bm25_ranker(catalog.items, k=100), judge, k=10)
    assert result["metrics"]["P@10"]["mean"] > 0
    assert all(r["unknown_ids"] == 0 for r in result["per_request"])


class _Split:
    n_users = 5
    user_ids = ("u0", "u1", "u2", "u3", "u4")


class _ProductPath:
    """Records the calls the request benchmark's product path makes."""

    def __init__(self):
        self.retriever = type("R", (), {"split": _Split()})()
        self.calls = []

    def recommend(self, **kwargs):
        self.calls.append(kwargs)
        return {"items": [{"id": 7}, {"id": "8"}]}


def test_recommend_ranker_makes_the_call_recommend_query_makes():
    from eval.requests import recommend_ranker, request_users

    recommender = _ProductPath()
    assert recommend_ranker(recommender)("toys") == ["7", "8"]
    assert recommender.calls[-1] == {"query": "toys", "user": None, "k": 10, "understand": True}
    users = request_users(["toys", "space"], recommender, seed=0)
    assert set(users) == {"toys", "space"} and set(users.values()) <= set(_Split.user_ids)
    assert len(set(users.values())) == 2 and users == request_users(["toys", "space"], recommender, seed=0)
    recommend_ranker(recommender, users)("space")
    assert recommender.calls[-1]["user"] == users["space"]
