"""The shop generator (tests/fakes/shop.py): deterministic, well-formed, and with the structure it claims."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from agent.core.project import read_project
from tests.fakes.shop import BRANDS, CATEGORIES, SHAPES, generate_shop, main


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _events(shop) -> list[dict]:
    with shop.events.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return generate_shop(tmp_path_factory.mktemp("shop"), products=80, users=48, seed=3, events_per_user=(6, 12))


def test_same_seed_same_files_other_seed_other_files(tmp_path, shop):
    again = generate_shop(tmp_path / "again", products=80, users=48, seed=3, events_per_user=(6, 12))
    other = generate_shop(tmp_path / "other", products=80, users=48, seed=4, events_per_user=(6, 12))
    assert _digest(again.root) == _digest(shop.root)
    assert _digest(other.root) != _digest(shop.root)


def test_catalog_rows_use_the_shops_own_fields(shop):
    rows = [json.loads(line) for line in shop.catalog.read_text().splitlines()]
    assert rows == shop.products and len(rows) == 80
    assert [r["sku"] for r in rows] == [f"SKU-{i:04d}" for i in range(1, 81)]
    assert len({r["name"] for r in rows}) == 80
    # 80 products over 8 categories: exactly 10 each (the generator spreads them evenly)
    assert Counter(r["category"] for r in rows) == {c[0]: 10 for c in CATEGORIES}
    for r in rows:
        assert set(r) == {"sku", "name", "description", "tags", "category", "brand", "released", "price", "image"}
        assert r["brand"] in BRANDS and r["name"].startswith(r["brand"] + " ")
        assert r["description"].startswith(r["brand"] + " ") and isinstance(r["tags"], list)
        assert datetime.fromisoformat(r["released"]).year in range(2015, 2023)
        assert (shop.root / r["image"]).is_file()


def test_images_colour_by_category_shape_by_brand(shop):
    for r in shop.products:
        cat = next(i for i, c in enumerate(CATEGORIES) if c[0] == r["category"])
        shape = SHAPES[BRANDS.index(r["brand"])]
        with Image.open(shop.root / r["image"]) as image:
            assert image.size == (480, 240)
            colour = CATEGORIES[cat][2]
            assert image.getpixel((5, 5)) == colour
            # the shape is drawn in the inverse colour around (240, 60); a ring leaves its centre empty
            centre = image.getpixel((240, 60))
            assert centre == (colour if shape == "ring" else tuple(255 - c for c in colour))
            # the name is printed in black on the white band below
            assert image.getpixel((5, 125)) == (255, 255, 255)
            assert image.crop((0, 120, 480, 240)).convert("L").getextrema()[0] == 0


def test_events_are_well_formed(shop):
    events = _events(shop)
    skus = {p["sku"] for p in shop.products}
    assert set(events[0]) == {"customer", "sku", "ts", "stars"}
    per_user = Counter(e["customer"] for e in events)
    assert set(per_user) == set(shop.preferred_category) and len(per_user) == 48
    assert all(6 <= n <= 12 for n in per_user.values())
    assert len({(e["customer"], e["sku"]) for e in events}) == len(events)  # no repeat clicks
    assert {e["sku"] for e in events} <= skus and {e["stars"] for e in events} <= set("12345")
    last: dict[str, datetime] = {}
    for e in events:
        when = datetime.fromisoformat(e["ts"])  # "...Z": UTC
        assert when.tzinfo is not None and when > last.get(e["customer"], datetime.min.replace(tzinfo=when.tzinfo))
        last[e["customer"]] = when


def test_clicks_follow_the_known_structure(shop):
    """Each customer's preferred category outweighs the other seven together: with 10 products a
    category the first click lands in it with probability ~10e^3.6 / (10e^3.6 + 70) ~ 0.84."""
    events = _events(shop)
    assert Counter(shop.preferred_category.values()) == {c[0]: 6 for c in CATEGORIES}  # 48 spread evenly
    in_pref = [shop.category_of(e["sku"]) == shop.preferred_category[e["customer"]] for e in events]
    assert sum(in_pref) / len(in_pref) > 0.6
    top = Counter()
    for e in events:
        top[(e["customer"], shop.category_of(e["sku"]))] += 1
    modes = {u: max((n, c) for (v, c), n in top.items() if v == u)[1] for u in shop.preferred_category}
    assert sum(modes[u] == c for u, c in shop.preferred_category.items()) >= 0.9 * 48
    # stars follow affinity: clicks in the preferred category are rated higher
    pref_stars = [int(e["stars"]) for e, p in zip(events, in_pref) if p]
    other_stars = [int(e["stars"]) for e, p in zip(events, in_pref) if not p]
    assert sum(pref_stars) / len(pref_stars) >= 4 and sum(other_stars) / len(other_stars) <= 3


def test_project_file_maps_the_shop(shop, tmp_path):
    project = read_project(shop.project_file)
    assert project.catalog.path == shop.catalog and project.catalog.resolved_format() == "jsonl"
    assert (project.catalog.id, project.catalog.title, project.catalog.date) == ("sku", "name", "released")
    assert project.catalog.facets == ["category", "brand"] and project.catalog.text == ["description"]
    assert project.catalog.tags == "tags"
    assert (project.interactions.path, project.interactions.user, project.interactions.time) == (
        shop.events, "customer", "ts")
    assert project.store.path == shop.root / "store" and project.store.artifacts_dir == shop.root / "artifacts"
    served = generate_shop(tmp_path / "url", products=16, users=2, store_url="http://127.0.0.1:8123")
    remote = read_project(served.project_file)
    assert remote.store.url == "http://127.0.0.1:8123" and remote.store.artifacts_dir == served.root / "artifacts"


def test_catalog_and_events_load_through_the_project(shop):
    """The generic loaders read the shop with nothing rejected (the "data" slice's load_source and
    load_interactions)."""
    from agent.ingest.catalog import load_source
    from agent.retrieval.interactions import load_interactions

    project = read_project(shop.project_file)
    loaded = load_source(project.catalog, 2000)
    assert not loaded.rejected and len(loaded.items) == 80
    first, row = loaded.items[0], shop.products[0]
    assert first.id == "SKU-0001" and first.title == row["name"]
    assert first.facets == {"category": (row["category"],), "brand": (row["brand"],)}
    assert first.year == int(row["released"][:4]) and first.tags == tuple(row["tags"])
    assert first.text == {"description": row["description"]} and first.metadata["price"] == row["price"]
    assert first.image and Path(first.image).resolve() == (shop.root / row["image"]).resolve()
    events = load_interactions(project.interactions, {p["sku"] for p in shop.products})
    assert len(events.frame) == len(_events(shop))
    assert events.frame["item"].str.startswith("SKU-").all()


def test_cli_writes_a_shop(tmp_path, capsys):
    assert main([str(tmp_path / "cli"), "--products", "24", "--users", "5", "--seed", "1"]) == 0
    assert "24 products, 5 customers" in capsys.readouterr().out
    assert len((tmp_path / "cli" / "catalog.jsonl").read_text().splitlines()) == 24
    assert len(list((tmp_path / "cli" / "images").glob("SKU-*.png"))) == 24
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "bad"), "--products", "3"])
    assert exc.value.code == 2
