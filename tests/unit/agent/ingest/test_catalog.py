import json

import pytest

from agent.core.errors import InputError
from agent.ingest.catalog import load_catalog, load_movielens, split_title_year


def test_split_title_year():
    assert split_title_year("Toy Story (1995)") == ("Toy Story", 1995)
    assert split_title_year("City of Lost Children, The (Cité des enfants perdus, La) (1995)") == (
        "City of Lost Children, The (Cité des enfants perdus, La)", 1995)
    assert split_title_year("Babylon 5") == ("Babylon 5", None)


def test_jsonl_bad_rows_are_reported_and_the_rest_load(tmp_path):
    path = tmp_path / "catalog.jsonl"
    rows = [
        {"id": "a", "title": "Alpha", "genres": "Drama|Comedy", "description": "A plot.", "rating": 4},
        {"title": "No id here"},
        "not json at all",
        {"id": "b", "title": "   "},
        {"id": "c", "title": "Gamma", "year": "nineteen"},
        {"id": "a", "title": "Duplicate"},
        {"id": 7, "title": "Numeric id", "image": "img/7.jpg"},
    ]
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    loaded = load_catalog(path)
    assert [i.id for i in loaded.items] == ["a", "7"]
    alpha = loaded.items[0]
    assert alpha.facets == {"genres": ("Drama", "Comedy")}
    assert alpha.text == {"description": "A plot."}
    assert alpha.metadata == {"rating": 4}
    assert loaded.items[1].image == str((tmp_path / "img" / "7.jpg").resolve())
    lines = {r.line: r.reason for r in loaded.rejected}
    assert set(lines) == {2, 3, 4, 5, 6}
    assert "id" in lines[2] and "Field required" in lines[2]
    assert "invalid JSON" in lines[3]
    assert "blank" in lines[4]
    assert "year" in lines[5]
    assert "duplicate id 'a'" in lines[6]
    assert all(r.file == str(path) for r in loaded.rejected)


def test_csv_catalog_line_numbers(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,title,tags\n1,One,x|y\n,Missing id,\n3,Three,\n")
    loaded = load_catalog(path)
    assert [i.id for i in loaded.items] == ["1", "3"]
    assert loaded.items[0].tags == ("x", "y")
    assert [(r.line, "id" in r.reason) for r in loaded.rejected] == [(3, True)]


def test_catalog_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_catalog(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(InputError, match=r"\.csv, \.jsonl or \.parquet"):
        load_catalog(tmp_path / "x.txt")
    with pytest.raises(InputError, match="movies.csv"):
        load_movielens(tmp_path)


def test_movielens_small_folder(tmp_path):
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,Nothing (2000),(no genres listed)\n"
    )
    (tmp_path / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n1,1,pixar,0\n2,1,Pixar,0\n3,1,fun,0\n"
    )
    (tmp_path / "plots.jsonl").write_text(json.dumps(
        {"movieId": 1, "description": "Toys live.", "director": ["John Lasseter"], "cast": ["Tom Hanks"]}) + "\n")
    posters = tmp_path / "posters"
    posters.mkdir()
    (posters / "1.jpg").write_bytes(b"x")
    loaded = load_movielens(tmp_path, posters)
    toy, nothing = loaded.items
    assert (toy.title, toy.year, toy.facets) == ("Toy Story", 1995, {"genres": ("Adventure", "Animation")})
    assert toy.tags == ("pixar", "fun")  # case-folded counts: pixar x2 first
    assert toy.people == {"director": ("John Lasseter",), "cast": ("Tom Hanks",)}
    assert toy.text == {"plot": "Toys live."}
    assert toy.image.endswith("posters/1.jpg") and nothing.image is None
    assert nothing.facets == {}
