"""A catalog that is not movies, end to end through a project file: the generated shop
(tests/fakes/shop.py) through init, ingest, train-retriever, eval, recommend, chat and serve on real
MiniLM, real OCR and real Chroma (embedded, then a `chroma run` server).

The click log was sampled with a known structure (each customer prefers one category), so the
trained retriever must find it: NDCG@10 well above popularity's, top-10s mostly in the preferred
category. One module fixture builds the shop's store and retriever once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.core.project import read_project
from tests.fakes.server import wait_healthy
from tests.fakes.shop import generate_shop
from tests.fakes.shop_cli import build, recsage, recsage_json
from tests.fakes.store import free_port
from tests.integration.test_store_server import chroma_server  # noqa: F401 - the `chroma run` fixture

pytestmark = pytest.mark.integration
# Few clicks per customer, so that after masking the history enough of the preferred category is
# left for a top-10 to be made of it (with 25 products a category, 25-40 clicks would use them up).
SHOP = {"products": 200, "users": 300, "seed": 0, "events_per_user": (12, 20)}


@pytest.fixture(scope="module")
def shop_store(tmp_path_factory, real_settings):
    shop = generate_shop(tmp_path_factory.mktemp("shop"), **SHOP)
    return shop, build(shop)  # real_settings: fails early when models are not provisioned


def a_facet_pair(shop) -> tuple[str, str]:
    """A (category, brand) pair with several products, so a filtered answer can be non-empty."""
    counts = Counter((p["category"], p["brand"]) for p in shop.products)
    return max(counts, key=lambda pair: (counts[pair], pair))


def history_of(shop, customer: str) -> set[str]:
    return {line.split(",")[1] for line in shop.events.read_text().splitlines()[1:] if line.startswith(customer + ",")}


def test_init_writes_a_project_file_that_parses(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(cli, ["init"]).exit_code == 0
    template = read_project(tmp_path / "recsage.toml")
    assert template.catalog.path.parent == tmp_path and template.store.artifacts_dir.parent == tmp_path
    again = CliRunner().invoke(cli, ["init"])
    assert again.exit_code == 2 and "--force" in again.stderr


def test_ingest_reads_the_shops_fields_and_its_images(shop_store):
    from agent.ingest.store import Store

    shop, built = shop_store
    summary = built["ingest"]
    assert summary["items_in_store"] == SHOP["products"] and not summary["skipped"] and not summary["failed"]
    cards = Store(path=shop.root / "store").collection().get(ids=[p["sku"] for p in shop.products])
    by_id = dict(zip(cards["ids"], cards["documents"]))
    first = shop.products[0]
    card = by_id[first["sku"]]
    assert first["category"] in card and first["brand"] in card and first["description"] in card
    # the name printed on each image comes back from OCR: the card holds it twice (title + image
    # text). Spaces compared loosely: the OCR model often runs words together.
    read = sum(squeeze(by_id[p["sku"]]).count(squeeze(p["name"])) >= 2 for p in shop.products)
    assert read >= 0.9 * len(shop.products), f"OCR read {read} of {len(shop.products)} product names"


def squeeze(text: str) -> str:
    return "".join(text.split()).lower()


def test_trained_retriever_recovers_the_known_structure(shop_store, tmp_path):
    shop, _ = shop_store
    assert (shop.root / "artifacts" / "retriever").is_dir()
    rows = recsage_json(shop.project_file, "eval", *[a for s in ("popularity", "content", "ease", "hybrid")
                                                     for a in ("--system", s)])
    ndcg = {r["system"]: r["metrics"]["NDCG@10"] for r in rows}
    assert rows[0]["protocol"]["users"] == SHOP["users"]
    assert ndcg["hybrid"] >= 2 * ndcg["popularity"] and ndcg["ease"] >= 2 * ndcg["popularity"], ndcg
    run_file = tmp_path / "hybrid.json"
    recsage(shop.project_file, "eval", "--system", "hybrid", "--run", run_file)
    run = json.loads(run_file.read_text())
    shares = []
    for customer, scores in run.items():
        top = sorted(scores, key=scores.get, reverse=True)[:10]
        shares.append(sum(shop.category_of(s) == shop.preferred_category[customer] for s in top) / 10)
    assert len(shares) == SHOP["users"] and sum(shares) / len(shares) >= 0.7


def test_recommend_answers_with_the_customers_category(shop_store):
    shop, _ = shop_store
    customer = "C0001"
    out = recsage_json(shop.project_file, "recommend", "--user", customer, "-k", "10", "--no-rerank")
    ids = [item["id"] for item in out["items"]]
    assert len(ids) == 10 and all(i.startswith("SKU-") for i in ids)
    assert not set(ids) & history_of(shop, customer)
    categories = Counter(shop.category_of(i) for i in ids).most_common()
    assert categories[0][0] == shop.preferred_category[customer] and categories[0][1] >= 5, categories


def test_explanations_of_a_reranked_list_say_the_shops_words(shop_store):
    """The project file's words (tests/fakes/shop.py: product, bought, shopper) reach the reranker's
    and the explainer's prompts, and the checker lets the explanations say them."""
    shop, _ = shop_store
    out = recsage_json(shop.project_file, "recommend", "--user", "C0001", "-k", "3", "--rerank", "--explain")
    texts = [item["explanation"] for item in out["items"]]
    assert out["reranked"] and len(texts) == 3 and all(texts), texts
    assert all(item["explanation_check"]["passed"] for item in out["items"]), texts
    assert not any(re.search(r"movie|watched|viewer", text, re.IGNORECASE) for text in texts), texts
    assert any(re.search(r"\bbought\b", text) for text in texts), texts  # "Because you bought", "who bought"


def test_chat_filters_by_a_category_and_a_brand_named_in_the_message(shop_store):
    shop, _ = shop_store
    category, brand = a_facet_pair(shop)
    turn = recsage_json(shop.project_file, "chat", f"show me {category.lower()} from {brand}", "--no-explain")
    ids = [item["id"] for item in turn["items"]]
    assert ids, turn
    assert all(shop.category_of(i) == category and shop.brand_of(i) == brand for i in ids), (category, brand, ids)


def test_serve_answers_with_shop_items(shop_store):
    shop, _ = shop_store
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "recsage"), "--project", str(shop.project_file), "serve",
           "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "RECSAGE_TOKEN"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base)
        picks = httpx.post(base + "/v1/recommend", json={"user": "C0002", "k": 5, "rerank": False}, timeout=300)
        assert picks.status_code == 200, picks.text
        ids = [item["id"] for item in picks.json()["items"]]
        assert len(ids) == 5 and all(i.startswith("SKU-") for i in ids)
        category, brand = a_facet_pair(shop)
        done = chat_over_http(base, f"show me {category.lower()} from {brand}")
        chat_ids = [item["id"] for item in done["items"]]
        assert chat_ids and all(shop.category_of(i) == category and shop.brand_of(i) == brand for i in chat_ids)
    finally:
        proc.terminate()
        proc.wait(timeout=30)



def chat_over_http(base: str, message: str) -> dict:
    """One /v1/chat turn (server-sent events); its final "done" event."""
    with httpx.stream("POST", base + "/v1/chat", json={"message": message}, timeout=300) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1]["type"] == "done", events[-3:]
    return events[-1]


@pytest.mark.server
def test_the_shop_on_a_chroma_server(chroma_server, tmp_path, real_settings):  # noqa: F811 - the fixture
    """[store] url + artifacts: ingest, training and answers all go through the server."""
    shop = generate_shop(tmp_path / "shop", products=64, users=96, seed=1, events_per_user=(6, 10),
                         store_url=chroma_server)
    built = build(shop)
    assert built["ingest"]["items_in_store"] == 64
    assert not (shop.root / "store").exists() and (shop.root / "artifacts" / "retriever").is_dir()
    customer = "C0003"
    out = recsage_json(shop.project_file, "recommend", "--user", customer, "-k", "5", "--no-rerank")
    ids = [item["id"] for item in out["items"]]
    assert len(ids) == 5 and all(i.startswith("SKU-") for i in ids) and not set(ids) & history_of(shop, customer)
    category, brand = a_facet_pair(shop)
    turn = recsage_json(shop.project_file, "chat", f"show me {category.lower()} from {brand}", "--no-explain")
    chat_ids = [item["id"] for item in turn["items"]]
    assert chat_ids and all(shop.category_of(i) == category and shop.brand_of(i) == brand for i in chat_ids)
