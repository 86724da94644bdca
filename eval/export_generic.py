"""MovieLens written out as a generic catalog: the check that nothing in recsage needs MovieLens.

    python -m eval.export_generic ML_DIR OUT_DIR

writes ``OUT_DIR/catalog.jsonl`` (ids "ml<movieId>"; columns code, name, released, kind, labels,
about, director/writer/cast and the scalar extras), ``OUT_DIR/events.csv`` (account "u<userId>",
product, when as ISO 8601 UTC, stars) and ``OUT_DIR/recsage.toml`` mapping both, so every command
reads them without the MovieLens loader. The protocol on it gives the MovieLens split with the
ids mapped: natural id order ("ml9" < "ml10") keeps MovieLens' numeric tie-breaking.

The project file names the card fields apart from the columns (``facets = {genres = "kind"}``,
``text = {plot = "about"}``), so every item equals MovieLens' but for its id: same cards, hence
comparable content vectors. Posters are not exported: media paths must lie in the catalog's folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.core.project import toml_value
from agent.ingest.catalog import Item, load_movielens

ITEM_PREFIX, USER_PREFIX = "ml", "u"
PEOPLE = ("director", "writer", "cast")
FACET_COLUMN, TEXT_COLUMN, DATE_COLUMN = "kind", "about", "released"
"""The export's own column names for MovieLens' genres, plot and year."""


def export_generic(movielens_dir: Path, out_dir: Path) -> Path:
    """Write the catalog, the events and the project file; returns the project file."""
    movielens_dir, out_dir = Path(movielens_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: set[str] = set()
    with open(out_dir / "catalog.jsonl", "w", encoding="utf-8") as fh:
        for item in load_movielens(movielens_dir).items:
            row = _row(item)
            written.update(row)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    _write_events(movielens_dir / "ratings.csv", out_dir / "events.csv")
    project = out_dir / "recsage.toml"
    project.write_text(_project_text(written), encoding="utf-8")
    return project


def _row(item: Item) -> dict:
    """One catalog line: genres as a list, tags as a "|" string, the year as ISO 8601 text."""
    row: dict = {"code": ITEM_PREFIX + item.id, "name": item.title}
    if item.year is not None:
        row[DATE_COLUMN] = f"{item.year:04d}"
    if item.facets.get("genres"):
        row[FACET_COLUMN] = list(item.facets["genres"])
    if item.tags:
        row["labels"] = "|".join(item.tags)
    if item.text.get("plot"):
        row[TEXT_COLUMN] = item.text["plot"]
    row.update({role: list(item.people[role]) for role in PEOPLE if item.people.get(role)})
    row.update(item.metadata)
    return row


def _write_events(ratings: Path, out: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(ratings, dtype={"userId": str, "movieId": str})
    when = pd.to_datetime(frame["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    pd.DataFrame({"account": USER_PREFIX + frame["userId"], "product": ITEM_PREFIX + frame["movieId"],
                  "when": when, "stars": frame["rating"]}).to_csv(out, index=False)


def _project_text(written: set[str]) -> str:
    """The project file, mapping only the optional columns some row has (a mapped column the
    file lacks altogether is an error); tables give the card fields MovieLens' names."""
    def mapped(key: str, fields: dict[str, str]) -> list[str]:
        present = {name: column for name, column in fields.items() if column in written}
        return [f"{key} = {toml_value(present)}"] if present else []

    catalog = ['path = "catalog.jsonl"', 'id = "code"', 'title = "name"', *mapped("text", {"plot": TEXT_COLUMN}),
               *mapped("facets", {"genres": FACET_COLUMN}), *mapped("people", {role: role for role in PEOPLE}),
               *(['tags = "labels"'] if "labels" in written else []),
               *([f"date = {json.dumps(DATE_COLUMN)}"] if DATE_COLUMN in written else [])]
    return "\n".join([
        "# MovieLens as a generic catalog (python -m eval.export_generic): no MovieLens loader involved",
        "[catalog]", *catalog, "",
        "[interactions]", 'path = "events.csv"', 'user = "account"', 'item = "product"', 'time = "when"',
        'rating = "stars"', "", "[store]", 'path = "store"', "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movielens", type=Path, help="MovieLens folder (movies.csv, ratings.csv ...)")
    parser.add_argument("out", type=Path, help="folder for catalog.jsonl, events.csv and recsage.toml")
    args = parser.parse_args(argv)
    print(export_generic(args.movielens, args.out))


if __name__ == "__main__":
    main()
