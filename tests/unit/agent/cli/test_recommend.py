"""`recommend` and `chat` through a project file: a tiny shop catalog with its own field names and
string ids, ingested with the fake embedder, the content system (no trained retriever needed)."""

import json

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.ingest.pipeline import Pipeline
from tests.conftest import FakeEmbedder

PRODUCTS = [
    ("SKU-1", "Trail running shoe", "shoes", "light trail running shoe with grip"),
    ("SKU-2", "Road running shoe", "shoes", "cushioned road running shoe"),
    ("SKU-3", "Trail running sock", "socks", "wool trail running sock"),
    ("SKU-4", "Espresso machine", "kitchen", "espresso coffee machine with steam wand"),
    ("SKU-5", "Coffee grinder", "kitchen", "burr coffee grinder for espresso"),
    ("SKU-6", "Milk frother", "kitchen", "milk frother for coffee"),
]
EVENTS = [("11", "SKU-1"), ("11", "SKU-3"), ("11", "SKU-2"), ("12", "SKU-4"), ("12", "SKU-5"), ("12", "SKU-6"),
          ("13", "SKU-2"), ("13", "SKU-1"), ("13", "SKU-5")]
PROJECT = """[catalog]
path = "catalog.jsonl"
id = "sku"
title = "name"
text = ["about"]
facets = ["category"]
[interactions]
path = "events.csv"
user = "customer"
item = "sku"
time = "ts"
min_count = 1
[store]
path = "store"
artifacts = "artifacts"
"""


def _json(output: str) -> dict:
    return json.loads(output[output.index("{"):])  # CliRunner mixes stderr (progress) into the output


@pytest.fixture
def shop(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECSAGE_PROJECT", raising=False)
    monkeypatch.setattr("agent.ingest.pipeline.build_pipeline", lambda settings, *_: Pipeline(FakeEmbedder(), [], [], notes=[]))
    monkeypatch.setattr("agent.ingest.pipeline.build_text_embedder", lambda settings, *_: FakeEmbedder(settings))
    with open(tmp_path / "catalog.jsonl", "w") as fh:
        fh.writelines(json.dumps({"sku": sku, "name": name, "category": category, "about": about}) + "\n"
                      for sku, name, category, about in PRODUCTS)
    rows = [f"{user},{sku},{1_700_000_000 + second}" for second, (user, sku) in enumerate(EVENTS)]
    (tmp_path / "events.csv").write_text("customer,sku,ts\n" + "\n".join(rows) + "\n")
    (tmp_path / "recsage.toml").write_text(PROJECT)
    env = {"RECSAGE_HOME": str(tmp_path / "home")}
    ingested = CliRunner().invoke(cli, ["ingest", "--json"], env=env)
    assert ingested.exit_code == 0, ingested.output
    assert _json(ingested.output)["items_in_store"] == 6
    return tmp_path, env


def test_recommend_reads_the_project_file(shop):
    folder, env = shop
    out = CliRunner().invoke(cli, ["recommend", "--history", "SKU-4", "--system", "content", "-k", "2", "--json"],
                             env=env)
    assert out.exit_code == 0, out.output
    items = _json(out.output)["items"]
    assert [i["id"] for i in items] == ["SKU-5", "SKU-6"]  # the other kitchen items share its words
    untrained = CliRunner().invoke(cli, ["recommend", "--user", "11", "-k", "2"], env=env)
    assert untrained.exit_code == 2
    assert f"no trained retriever in {folder / 'artifacts' / 'retriever'}: run `recsage train-retriever`" in (
        untrained.output)



def test_chat_answers_with_the_projects_items_and_histories(shop):
    _, env = shop
    out = CliRunner().invoke(cli, ["chat", "what has user 12 rated?", "--no-explain", "--tool-choice", "rules",
                                   "--json"], env=env)
    assert out.exit_code == 0, out.output
    turn = _json(out.output)
    assert turn["tool"] == "user_history"
    assert [i["id"] for i in turn["items"]] == ["SKU-6", "SKU-5", "SKU-4"]  # the log's events, latest first
    assert turn["items"][0]["title"] == "Milk frother"


def test_recommend_filters_by_a_facet_of_the_project(shop):
    _, env = shop
    args = ["recommend", "--history", "SKU-4", "--system", "content", "-k", "3", "--json"]
    out = CliRunner().invoke(cli, [*args, "--facet", "category=shoes"], env=env)
    assert out.exit_code == 0, out.output
    items = _json(out.output)["items"]
    assert {i["id"] for i in items} == {"SKU-1", "SKU-2"}  # the only shoes, though k is 3
    assert all(i["facets"] == {"category": ["shoes"]} for i in items)
    either = CliRunner().invoke(cli, [*args, "--facet", "category=shoes", "--facet", "category=socks"], env=env)
    assert {i["id"] for i in _json(either.output)["items"]} == {"SKU-1", "SKU-2", "SKU-3"}
    unknown = CliRunner().invoke(cli, [*args, "--facet", "category=boots"], env=env)
    assert unknown.exit_code == 2 and "valid category: kitchen, shoes, socks" in unknown.output
    malformed = CliRunner().invoke(cli, [*args, "--facet", "category"], env=env)
    assert malformed.exit_code == 2 and "NAME=VALUE" in malformed.output


def test_eval_says_what_a_bad_interactions_log_lost_and_keeps_the_rest(shop):
    folder, env = shop
    good = (folder / "events.csv").read_text()
    (folder / "events.csv").write_text(good + "11,SKU-404,1700000100\n12,SKU-1,last tuesday\n,SKU-2,1700000101\n")
    out = CliRunner().invoke(cli, ["eval", "--system", "popularity", "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert "12 rows, 9 kept; skipped 1 empty user or item, 1 unparseable time, 1 unknown item" in out.output
    assert f"{folder / 'events.csv'}:11: unknown item (sku = 'SKU-404')" in out.output
    assert f"{folder / 'events.csv'}:12: unparseable time (ts = 'last tuesday')" in out.output


def test_recommend_reads_the_query_as_the_chat_reads_a_message(shop):
    _, env = shop
    args = ["recommend", "-k", "3", "--no-rerank", "--json", "--query"]
    out = CliRunner().invoke(cli, [*args, "trail running shoes"], env=env)
    assert out.exit_code == 0, out.output
    # "shoes" names the category: the trail running sock shares every other word but is not a shoe
    assert {i["id"] for i in _json(out.output)["items"]} == {"SKU-1", "SKU-2"}
    named = CliRunner().invoke(cli, [*args, "something like espresso machine"], env=env)
    assert named.exit_code == 0, named.output
    ids = [i["id"] for i in _json(named.output)["items"]]
    assert "SKU-4" not in ids and len(ids) == 3  # a title the request names is never recommended back
