"""A small shop that is not movies: products, Pillow-drawn images and a click log with known structure.

The catalog uses its own field names (sku, name, description, tags, category, brand, released,
image), the log its own columns (customer, sku, ts as ISO 8601, stars), and ``recsage.toml`` maps
them onto recsage's fields, so the shop exercises the project-file path end to end.

The log is sampled from a latent-factor model whose structure the tests know: every customer has a
preferred category and brand, every product a vector made of its category's and brand's one-hot
blocks, and each customer's clicks are drawn without replacement by softmax over the affinities
(Gumbel top-k), in time order. A retriever that learns anything from the log ranks the preferred
category first; popularity cannot, since every category has about the same number of clicks.

    python -m tests.fakes.shop OUT_DIR [--products N] [--users N] [--seed S]
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

# (facet value, noun in names, image colour, features, uses)
CATEGORIES = (
    ("Running Shoes", "running shoe", (214, 69, 65),
     ("breathable mesh upper", "cushioned foam sole", "grippy rubber outsole", "reflective heel tab"),
     ("road runs", "trail runs", "race day")),
    ("Headphones", "headphones", (52, 101, 164),
     ("active noise cancelling", "forty hour battery", "soft memory foam cushions", "folding frame"),
     ("the commute", "long flights", "the office")),
    ("Backpacks", "backpack", (78, 154, 6),
     ("padded laptop sleeve", "water resistant fabric", "hidden passport pocket", "chest strap"),
     ("hiking", "the commute", "weekend trips")),
    ("Coffee Makers", "coffee maker", (143, 89, 2),
     ("programmable timer", "thermal carafe", "built in grinder", "milk frother"),
     ("busy mornings", "the office kitchen", "espresso lovers")),
    ("Yoga Mats", "yoga mat", (117, 80, 123),
     ("non slip surface", "six millimetre cushioning", "carry strap", "alignment lines"),
     ("hot yoga", "pilates", "home workouts")),
    ("Desk Lamps", "desk lamp", (237, 212, 0),
     ("dimmable warm light", "adjustable arm", "USB charging port", "touch control"),
     ("late night reading", "the home office", "drawing")),
    ("Water Bottles", "water bottle", (6, 152, 154),
     ("double wall insulation", "leak proof lid", "dishwasher safe steel", "carry loop"),
     ("the gym", "long hikes", "school")),
    ("Rain Jackets", "rain jacket", (85, 87, 83),
     ("sealed seams", "packable hood", "breathable membrane", "pit zips"),
     ("wet commutes", "mountain walks", "festivals")),
)
BRANDS = ("Acme", "Borealis", "Cobalt", "Dunmore", "Ember", "Fjordline", "Granite", "Helix", "Kestrel", "Juniper")
MODELS = ("Swift", "Nova", "Peak", "Aero", "Terra", "Pulse", "Drift", "Vista", "Orbit", "Flux", "Sierra", "Zen")
SHAPES = ("circle", "square", "triangle", "diamond", "bar", "ring", "cross", "pentagon", "hexagon", "star")
IMAGE_SIZE = (480, 240)
SHAPE_CENTRE, TEXT_TOP, WORD_GAP = (240, 60), 120, 0.45  # gap between words, in font sizes
START = datetime(2023, 1, 1, tzinfo=UTC)

# Latent-factor weights. The preferred category's block dominates (about four in five clicks fall in
# it), the brand block orders products within it, and a per-product bias gives popularity something
# to find.
CATEGORY_WEIGHT, BRAND_WEIGHT, USER_CATEGORY, USER_BRAND = 3.0, 1.0, 1.2, 0.8
ITEM_NOISE, POPULARITY_SPREAD = 0.3, 0.4


@dataclass
class Shop:
    """What the generator wrote, and the structure the click log was sampled from."""

    root: Path
    project_file: Path
    catalog: Path
    events: Path
    products: list[dict]
    preferred_category: dict[str, str] = field(default_factory=dict)
    preferred_brand: dict[str, str] = field(default_factory=dict)

    def category_of(self, sku: str) -> str:
        return self._by_sku()[sku]["category"]

    def brand_of(self, sku: str) -> str:
        return self._by_sku()[sku]["brand"]

    def _by_sku(self) -> dict[str, dict]:
        if not hasattr(self, "_index"):
            self._index = {p["sku"]: p for p in self.products}
        return self._index


def generate_shop(root: Path, products: int = 300, users: int = 400, seed: int = 0,
                  store_url: str | None = None, events_per_user: tuple[int, int] = (25, 40)) -> Shop:
    """Write catalog.jsonl, images/, events.csv and recsage.toml into ``root``; deterministic from ``seed``."""
    if products < len(CATEGORIES) * 2 or users < 1:
        raise ValueError(f"need at least {len(CATEGORIES) * 2} products and one user")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, cats, brands = _products(rng, products)
    for row, cat, brand in zip(rows, cats, brands):
        draw_product_image(root / row["image"], row["name"], cat, brand)
    catalog = root / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(row) + "\n" for row in rows))
    customers, pref_cat, pref_brand = _customers(rng, users)
    events = root / "events.csv"
    clicks, affinity = _clicks(rng, cats, brands, pref_cat, pref_brand, events_per_user)
    _write_events(rng, events, clicks, affinity, customers, [r["sku"] for r in rows])
    project = root / "recsage.toml"
    project.write_text(project_toml(store_url))
    return Shop(root=root, project_file=project, catalog=catalog, events=events, products=rows,
                preferred_category={c: CATEGORIES[k][0] for c, k in zip(customers, pref_cat)},
                preferred_brand={c: BRANDS[b] for c, b in zip(customers, pref_brand)})


def _products(rng: np.random.Generator, n: int) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Products spread evenly over the categories (every category the same size), brands at random."""
    cats = np.arange(n) % len(CATEGORIES)
    rng.shuffle(cats)
    brands = rng.integers(0, len(BRANDS), size=n)
    taken: set[str] = set()
    rows = []
    for i, (cat, brand) in enumerate(zip(cats, brands)):
        sku = f"SKU-{i + 1:04d}"
        name = _unique_name(rng, BRANDS[brand], CATEGORIES[cat][1], taken)
        rows.append(_product_row(rng, sku, name, int(cat), int(brand)))
    return rows, cats, brands


def _unique_name(rng: np.random.Generator, brand: str, noun: str, taken: set[str]) -> str:
    for model in rng.permutation(MODELS):
        name = f"{brand} {model} {noun.title()}"
        if name not in taken:
            break
    else:  # every model word is used for this brand and category: number the next one
        name = f"{brand} {rng.choice(MODELS)} {noun.title()} {len(taken)}"
    taken.add(name)
    return name


def _product_row(rng: np.random.Generator, sku: str, name: str, cat: int, brand: int) -> dict:
    category, noun, _, features, uses = CATEGORIES[cat]
    picked = [features[j] for j in sorted(rng.choice(len(features), size=3, replace=False))]
    use = uses[int(rng.integers(len(uses)))]
    released = START.date() - timedelta(days=int(rng.integers(0, 8 * 365)))
    return {
        "sku": sku,
        "name": name,
        "description": f"{BRANDS[brand]} {noun}: {picked[0]}, {picked[1]} and {picked[2]}. Made for {use}.",
        "tags": [noun, use, picked[0]],
        "category": category,
        "brand": BRANDS[brand],
        "released": released.isoformat(),
        "price": round(float(rng.uniform(15, 250)), 2),
        "image": f"images/{sku}.png",
    }


def _customers(rng: np.random.Generator, n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Customer ids, each with a preferred category (evenly spread) and brand."""
    pref_cat = np.arange(n) % len(CATEGORIES)
    rng.shuffle(pref_cat)
    return [f"C{u + 1:04d}" for u in range(n)], pref_cat, rng.integers(0, len(BRANDS), size=n)


def _clicks(rng, cats, brands, pref_cat, pref_brand, per_user: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Each customer's clicked product indices in click order (softmax sampling without replacement),
    and the customer x product affinities they were drawn from."""
    n_items, n_users = len(cats), len(pref_cat)
    dim = len(CATEGORIES) + len(BRANDS)
    items = np.zeros((n_items, dim))
    items[np.arange(n_items), cats] = CATEGORY_WEIGHT
    items[np.arange(n_items), len(CATEGORIES) + brands] = BRAND_WEIGHT
    items += ITEM_NOISE * rng.standard_normal(items.shape)
    people = np.zeros((n_users, dim))
    people[np.arange(n_users), pref_cat] = USER_CATEGORY
    people[np.arange(n_users), len(CATEGORIES) + pref_brand] = USER_BRAND
    logits = people @ items.T + POPULARITY_SPREAD * rng.standard_normal(n_items)
    # Gumbel top-k: sorting logits + Gumbel noise draws a softmax sample without replacement, in order.
    order = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1)
    counts = rng.integers(per_user[0], per_user[1] + 1, size=n_users).clip(max=n_items)
    return [order[u, :counts[u]] for u in range(n_users)], logits


def _write_events(rng, path: Path, clicks: list[np.ndarray], affinity: np.ndarray, customers: list[str],
                  skus: list[str]) -> None:
    """events.csv: customer, sku, ts (ISO 8601, UTC, increasing per customer), stars (1-5: about one
    star per unit of affinity, so products of the preferred category get 4-5 and the rest 1-3)."""
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["customer", "sku", "ts", "stars"])
        for u, (customer, picked) in enumerate(zip(customers, clicks)):
            when = START + timedelta(days=int(rng.integers(0, 300)), seconds=int(rng.integers(0, 86400)))
            for item in picked:
                when += timedelta(seconds=int(rng.integers(600, 3 * 86400)))
                stars = int(np.clip(np.rint(1 + affinity[u, item] + rng.normal(0, 0.5)), 1, 5))
                out.writerow([customer, skus[item], when.strftime("%Y-%m-%dT%H:%M:%SZ"), stars])


def project_toml(store_url: str | None = None) -> str:
    """The shop's mapping onto recsage's fields; ``store_url`` puts the store on a `chroma run` server."""
    store = (f'url = "{store_url}"\nartifacts = "artifacts"' if store_url
             else 'path = "store"\nartifacts = "artifacts"')
    return f"""# The shop's own field names mapped onto recsage's.
[catalog]
path = "catalog.jsonl"
id = "sku"
title = "name"
text = ["description"]
tags = "tags"
facets = ["category", "brand"]
date = "released"
image = "image"
noun = "product"
verb = "bought"
audience = "shopper"

[interactions]
path = "events.csv"
user = "customer"
item = "sku"
time = "ts"
rating = "stars"

[store]
{store}
"""


def draw_product_image(path: Path, name: str, cat: int, brand: int) -> None:
    """Colour by category, shape by brand, the product name in big letters (so OCR can read it):
    brand and model on one line, the product noun on the next, words spaced wide because the OCR
    model tends to run close words together."""
    from PIL import Image, ImageDraw

    colour = CATEGORIES[cat][2]
    image = Image.new("RGB", IMAGE_SIZE, colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, TEXT_TOP, IMAGE_SIZE[0], IMAGE_SIZE[1]), fill=(255, 255, 255))
    _draw_shape(draw, SHAPES[brand], SHAPE_CENTRE, 45, tuple(255 - c for c in colour))
    words = name.split()
    lines = (words[:2], words[2:])
    size = min(_font_size(draw, line) for line in lines)
    for line, y in zip(lines, (TEXT_TOP + 35, TEXT_TOP + 85)):
        _draw_words(draw, line, y, size)
    image.save(path, "PNG")


def _line_width(draw, words: list[str], size: int) -> float:
    from PIL import ImageFont

    font = ImageFont.load_default(size=size)
    return sum(draw.textlength(w, font=font) for w in words) + WORD_GAP * size * (len(words) - 1)


def _font_size(draw, words: list[str]) -> int:
    """The largest size (up to 40 px) at which the words fit the image's width with a margin."""
    return next((size for size in range(40, 12, -2) if _line_width(draw, words, size) <= IMAGE_SIZE[0] - 24), 12)


def _draw_words(draw, words: list[str], y: int, size: int) -> None:
    from PIL import ImageFont

    font = ImageFont.load_default(size=size)
    x = (IMAGE_SIZE[0] - _line_width(draw, words, size)) / 2
    for word in words:
        draw.text((x, y), word, fill=(0, 0, 0), font=font, anchor="lm")
        x += draw.textlength(word, font=font) + WORD_GAP * size


def _draw_shape(draw, shape: str, centre: tuple[int, int], r: int, fill: tuple[int, ...]) -> None:
    x, y = centre
    box = (x - r, y - r, x + r, y + r)
    polygons = {"triangle": 3, "diamond": 4, "pentagon": 5, "hexagon": 6}
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=14)
    elif shape == "bar":
        draw.rectangle((x - r, y - r // 3, x + r, y + r // 3), fill=fill)
    elif shape == "cross":
        draw.rectangle((x - r, y - r // 4, x + r, y + r // 4), fill=fill)
        draw.rectangle((x - r // 4, y - r, x + r // 4, y + r), fill=fill)
    elif shape == "star":
        draw.regular_polygon((x, y, r), 3, fill=fill)
        draw.regular_polygon((x, y, r), 3, rotation=180, fill=fill)
    else:
        draw.regular_polygon((x, y, r), polygons[shape], fill=fill)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.shop", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="Folder to write the shop into (created).")
    parser.add_argument("--products", type=int, default=300, help="How many products (default 300).")
    parser.add_argument("--users", type=int, default=400, help="How many customers (default 400).")
    parser.add_argument("--seed", type=int, default=0, help="Random seed (same seed, same files).")
    parser.add_argument("--store-url", default=None, help="Write [store] url = URL (a `chroma run` server).")
    args = parser.parse_args(argv)
    try:
        shop = generate_shop(args.out_dir, args.products, args.users, args.seed, store_url=args.store_url)
    except ValueError as exc:
        parser.error(str(exc))
    n_events = sum(1 for _ in shop.events.open()) - 1
    print(f"wrote {len(shop.products)} products, {len(shop.preferred_category)} customers, {n_events} events "
          f"and {shop.project_file.name} into {shop.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
