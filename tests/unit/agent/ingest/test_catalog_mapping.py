"""Any catalog through the project file's column mapping (load_source, catalog_ids)."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from agent.core.errors import InputError
from agent.core.project import CatalogSource
from agent.ingest.catalog import catalog_ids, load_catalog, load_movielens, load_source
from agent.ingest.mapping import year_of

SHOP = {"id": "sku", "title": "name", "text": ["description"], "facets": ["category", "brand"], "people": ["artist"],
        "tags": "labels", "date": "released", "image": "picture", "audio": "jingle", "video": "clip"}


def _write_jsonl(path, rows) -> None:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")


def test_jsonl_rows_map_to_items_with_facets_people_media_and_metadata(tmp_path):
    (tmp_path / "img").mkdir()
    path = tmp_path / "shop.jsonl"
    _write_jsonl(path, [
        {"sku": 101, "name": "Boots", "description": "Warm.", "category": ["Shoes", "Winter"], "brand": "Acme|Zed",
         "artist": "Ann|Bo", "labels": ["wool"], "released": "2021-03-04", "picture": "img/101.jpg",
         "clip": "https://example.org/boots.mp4", "price": 59.5, "in_stock": True, "sizes": [40, 41]},
        {"sku": "102", "name": "Hat", "released": "2020-12-31T23:30:00-02:00", "picture": "https://x.org/h.png",
         "jingle": "https://x.org/h.mp3", "clip": "../../etc/passwd", "brand": ""},
        {"sku": "103", "name": "Scarf", "released": "sometime"},
        {"name": "No sku"},
        {"sku": "101", "name": "Boots again"},
    ])
    loaded = load_source(CatalogSource(path=path, **SHOP))
    boots, hat = loaded.items
    assert boots.id == "101" and boots.title == "Boots" and boots.year == 2021
    assert boots.facets == {"category": ("Shoes", "Winter"), "brand": ("Acme", "Zed")}
    assert boots.people == {"artist": ("Ann", "Bo")} and boots.tags == ("wool",)
    assert boots.text == {"description": "Warm."}
    assert boots.image == str((tmp_path / "img" / "101.jpg").resolve()) and boots.video is None
    # unmapped scalars become metadata; the unmapped list is not a scalar and is left out
    assert boots.metadata == {"price": 59.5, "in_stock": True, "video_url": "https://example.org/boots.mp4"}
    assert hat.year == 2020 and hat.facets == {} and hat.image is None and hat.audio is None and hat.video is None
    assert hat.metadata == {"image_url": "https://x.org/h.png"}
    reasons = [(r.line, r.kept, r.reason) for r in loaded.rejected]
    assert [(line, kept) for line, kept, _ in reasons] == [(2, True), (2, True), (3, False), (4, False), (5, False)]
    assert "jingle" not in reasons[0][2] and "audio 'https://x.org/h.mp3' is a URL" in reasons[0][2]
    assert "outside the catalog's folder" in reasons[1][2]
    assert "released: 'sometime' is not an ISO 8601 date" in reasons[2][2]
    assert "id" in reasons[3][2] and "duplicate id '101' (first on line 1)" in reasons[4][2]
    assert str(loaded.rejected[2]).startswith(f"{path}:3: ")


def test_a_mapped_column_the_file_lacks_is_an_input_error_listing_its_columns(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("sku,name,colour\n1,Boots,red\n")
    with pytest.raises(InputError) as err:
        load_source(CatalogSource(path=path, id="sku", title="name", facets=["color", "brand"]))
    assert "'color', 'brand'" in str(err.value) and "its columns are 'sku', 'name', 'colour'" in str(err.value)
    with pytest.raises(InputError, match="'id'"):  # the default id column is a mapping too
        load_source(CatalogSource(path=path, title="name"))


def test_csv_with_a_year_column_and_pipe_facets(tmp_path):
    path = tmp_path / "music.csv"
    path.write_text("track,song,year,genre,artist\nt1,Intro,1999,Rock|Pop,A\nt2,Outro,nineteen,Jazz,B\nt3,Mid,,,\n")
    loaded = load_source(CatalogSource(path=path, id="track", title="song", year="year", facets=["genre"],
                                       people=["artist"]))
    assert [(i.id, i.year, i.facets, i.people) for i in loaded.items] == [
        ("t1", 1999, {"genre": ("Rock", "Pop")}, {"artist": ("A",)}), ("t3", None, {}, {})]
    assert [r.line for r in loaded.rejected] == [3] and "year" in loaded.rejected[0].reason


def test_parquet_with_list_columns_and_gaps(tmp_path):
    path = tmp_path / "shop.parquet"
    pd.DataFrame({"sku": [1, 2], "name": ["Boots", "Hat"], "category": [["Shoes"], []],
                  "year": [2001.0, float("nan")], "rating": [4.5, float("nan")]}).to_parquet(path)
    loaded = load_source(CatalogSource(path=path, id="sku", title="name", facets=["category"], year="year"))
    boots, hat = loaded.items
    assert (boots.id, boots.year, boots.facets) == ("1", 2001, {"category": ("Shoes",)})
    assert boots.metadata == {"rating": 4.5}
    assert (hat.id, hat.year, hat.facets, hat.metadata) == ("2", None, {}, {})
    assert catalog_ids(CatalogSource(path=path, id="sku")) == {"1", "2"}


def test_movielens_format_is_the_movielens_loader_with_its_posters(tmp_path):
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation\n")
    posters = tmp_path / "posters"
    posters.mkdir()
    (posters / "1.jpg").write_bytes(b"x")
    loaded = load_source(CatalogSource(path=tmp_path, format="movielens", posters=posters))
    assert loaded.items == load_movielens(tmp_path, posters).items
    assert loaded.items[0].image == str((posters / "1.jpg").resolve())
    assert catalog_ids(CatalogSource(path=tmp_path, format="movielens")) == {"1"}


def test_catalog_ids_read_the_id_column_as_the_items_do(tmp_path):
    path = tmp_path / "c.jsonl"
    _write_jsonl(path, [{"sku": 7, "name": "A"}, {"sku": " b ", "name": "B"}, {"name": "no id"}, "junk"])
    source = CatalogSource(path=path, id="sku", title="name")
    assert catalog_ids(source) == {"7", "b"} == {i.id for i in load_source(source).items}
    with pytest.raises(InputError, match="'code'.*its columns are 'sku', 'name'"):
        catalog_ids(CatalogSource(path=path, id="code"))


def test_a_binary_catalog_is_one_clear_error(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    with pytest.raises(InputError, match="not a CSV/JSONL/parquet file"):
        load_source(CatalogSource(path=path))
    with pytest.raises(InputError, match="not a CSV/JSONL/parquet file"):
        load_catalog(path)


def test_the_native_layout_keeps_video_urls_as_metadata_and_confines_video_paths(tmp_path):
    path = tmp_path / "c.jsonl"
    _write_jsonl(path, [{"id": "1", "title": "A", "video": "https://example.org/a.mp4"},
                        {"id": "2", "title": "B", "video": "clips/b.mp4", "people": {"cast": "X|Y"},
                         "facets": {"mood": ["calm", "dark"]}, "genres": "Drama"},
                        {"id": "3", "title": "C", "video": "/etc/passwd"}])
    loaded = load_catalog(path)
    assert loaded.items[0].metadata == {"video_url": "https://example.org/a.mp4"} and loaded.items[0].video is None
    assert loaded.items[1].video == str((tmp_path / "clips" / "b.mp4").resolve())
    assert loaded.items[1].people == {"cast": ("X", "Y")}
    assert loaded.items[1].facets == {"mood": ("calm", "dark"), "genres": ("Drama",)}
    assert loaded.items[2].video is None and [(r.line, r.kept) for r in loaded.rejected] == [(3, True)]


@pytest.mark.parametrize(("value", "year"), [
    ("1995-07-14", 1995), ("1995-07-14T10:00:00Z", 1995), ("1995-07", 1995), ("1995", 1995), (1995, 1995),
    (date(1995, 7, 14), 1995), ("2000-01-01T00:30:00+05:00", 2000),
])
def test_year_of_iso_dates(value, year):
    assert year_of(value, "released") == year


@pytest.mark.parametrize("value", ["July 1995", "1995-13", "14/07/1995", ""])
def test_year_of_refuses_what_is_not_iso_8601(value):
    with pytest.raises(ValueError, match="released: .* is not an ISO 8601 date"):
        year_of(value, "released")


def test_a_table_names_card_fields_apart_from_their_columns(tmp_path):
    import tomllib

    from agent.core.project import CatalogSource, toml_value
    from agent.ingest.catalog import load_source

    path = tmp_path / "c.jsonl"
    path.write_text('{"code": "m1", "name": "Heat", "kind": "Crime|Drama", "about": "A heist.", "made_by": "Mann"}\n')
    source = CatalogSource(path=path, id="code", title="name", text={"plot": "about"}, facets={"genres": "kind"},
                           people={"director": "made_by"})
    item = load_source(source).items[0]
    assert item.text == {"plot": "A heist."} and item.facets == {"genres": ("Crime", "Drama")}
    assert item.people == {"director": ("Mann",)} and "about" not in item.metadata and "kind" not in item.metadata
    assert tomllib.loads(f"t = {toml_value({'genres': 'kind'})}")["t"] == {"genres": "kind"}
