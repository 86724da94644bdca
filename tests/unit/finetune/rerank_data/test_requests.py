"""Synthetic request examples: determinism, benchmark exclusions, positives that really fit."""

from __future__ import annotations

import csv
import json

import pytest

from agent.core.text import normalise_unfolded as normalise
from agent.ingest.catalog import load_movielens
from finetune.rerank_data import requests as request_data
from finetune.rerank_data.requests import (
    build_request_examples,
    has_fact,
    write_examples,
)

GENRES = ["Comedy", "Drama", "Sci-Fi", "Thriller"]
TAGS = ["time travel", "heist", "dark", "quirky", "In Netflix queue"]
ACTORS = ["Ann Lee", "Bo Park", "Cy Diaz", "Di Moss"]
PLOTS = ["A lonely scientist builds a machine and travels through history.",
         "Four friends plan a robbery of a casino vault.",
         "A detective investigates murders in a foggy harbour town.",
         "Two sisters inherit a haunted farmhouse and uncover secrets."]


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    folder = tmp_path / "ml"
    folder.mkdir()
    with open(folder / "movies.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["movieId", "title", "genres"])
        for i in range(1, 41):
            genres = {GENRES[i % 4], GENRES[(i // 4) % 4]}
            w.writerow([i, f"Film {i} ({1960 + i * 1})", "|".join(sorted(genres))])
    with open(folder / "tags.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["userId", "movieId", "tag", "timestamp"])
        for i in range(1, 41):
            w.writerow([1, i, TAGS[i % 5], 0])
            w.writerow([1, i, TAGS[(i // 5) % 5], 0])
    with open(folder / "plots.jsonl", "w") as fh:
        for i in range(1, 41):
            fh.write(json.dumps({"movieId": i, "description": PLOTS[i % 4], "director": [f"Dir {i % 3}"],
                                 "cast": [ACTORS[i % 4], ACTORS[(i + 1) % 4]]}) + "\n")
    rel = {"genres_any": [], "genres_none": [], "plot_any": [], "year_min": None, "year_max": None}
    requests = [
        {"id": "t1", "text": "a heist comedy", "split": "test",
         "relevance": {**rel, "genres_all": ["Comedy"], "tags_any": ["heist*"]}},
        {"id": "v1", "text": "a comedy film about time travel!", "split": "val",
         "relevance": {**rel, "genres_all": ["Drama"], "tags_any": ["nothing like this"]}},
    ]
    bench = tmp_path / "requests.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in requests))
    monkeypatch.setattr(request_data, "BENCHMARK_REQUESTS", bench)
    return folder


def test_deterministic(tiny):
    a = build_request_examples(tiny, 40, seed=1, n_negatives=3)
    b = build_request_examples(tiny, 40, seed=1, n_negatives=3)
    c = build_request_examples(tiny, 40, seed=2, n_negatives=3)
    assert a == b and a != c
    assert len(a) == 40 and len({r["template"].split("/")[0] for r in a}) >= 4


def test_positives_have_the_named_facts_and_negatives_do_not(tiny):
    items = {i.id: i for i in load_movielens(tiny).items}
    rows = build_request_examples(tiny, 60, seed=0, n_negatives=3)
    for row in rows:
        facts = [tuple(f) for f in row["facts"]]
        assert all(has_fact(items[row["positive"]], f) for f in facts), row
        for value in (v for _, v in facts):
            assert value.lower() in row["request"].lower()
        for neg in row["negatives"]:
            hits = sum(has_fact(items[neg], f) for f in facts)
            assert 0 < hits < len(facts), (row, neg)  # hard: shares some facts, never all
        assert row["positive"] not in row["negatives"]
        assert not set(row["also_relevant"]) & set(row["negatives"])
        assert all(f[1] != "in netflix queue" for f in facts)


def test_benchmark_texts_rules_and_test_items_are_excluded(tiny):
    from eval.requests import load_relevance_catalog, load_requests, relevant_items

    report: dict = {}
    rows = build_request_examples(tiny, 120, seed=0, n_negatives=3, report=report)
    bench = load_requests(request_data.BENCHMARK_REQUESTS)
    test_items = relevant_items(bench[0], load_relevance_catalog(tiny))
    assert test_items  # the fixture has heist comedies
    texts = {normalise(r.text) for r in bench}
    for row in rows:
        assert normalise(row["request"]) not in texts
        assert row["positive"] not in test_items
        assert not set(row["negatives"]) & test_items
        genres = {v for k, v in row["facts"] if k == "genre"}
        words = {v for k, v in row["facts"] if k in ("tag", "plot")}
        assert not (genres == {"Comedy"} and "heist" in words)
    assert report["excluded_items_relevant_to_test_requests"] == len(test_items)


def test_a_benchmark_text_is_never_generated(tiny, tmp_path, monkeypatch):
    rows = build_request_examples(tiny, 30, seed=0, n_negatives=3)
    taken = rows[5]["request"]
    bench = tmp_path / "bench2.jsonl"
    row = {"id": "v9", "text": "  " + taken.upper() + "?", "split": "val",
           "relevance": {"genres_all": ["Drama"], "tags_any": ["nothing like this"]}}
    bench.write_text(request_data.BENCHMARK_REQUESTS.read_text() + json.dumps(row) + "\n")
    monkeypatch.setattr(request_data, "BENCHMARK_REQUESTS", bench)
    report: dict = {}
    again = build_request_examples(tiny, 30, seed=0, n_negatives=3, report=report)
    assert normalise(taken) not in {normalise(r["request"]) for r in again}
    assert report["dropped"]["text equals a benchmark request"] >= 1


def test_write_examples_with_card(tiny, tmp_path):
    report: dict = {}
    rows = build_request_examples(tiny, 10, seed=0, n_negatives=3, report=report)
    card_path = write_examples(rows, tmp_path / "out" / "requests.jsonl", report)
    lines = (tmp_path / "out" / "requests.jsonl").read_text().splitlines()
    assert [json.loads(l) for l in lines] == rows
    card = json.loads(card_path.read_text())
    assert card["rows"] == 10 and sum(card["templates"].values()) == 10
    assert "dropped" in card and card["benchmark_file"].endswith("requests.jsonl")
    assert set(rows[0]) >= {"request", "positive", "negatives", "template"}
