"""The project file: written back as TOML it reads the same; messages name the project as a command line does."""

from pathlib import Path

import pytest

from agent.core.errors import InputError
from agent.core.project import (
    CatalogSource,
    Project,
    StoreTarget,
    movielens_project,
    project_toml,
    read_project,
    toml_value,
)


def test_toml_values_are_quoted_escaped_and_typed():
    assert toml_value('say "hi"\\now') == '"say \\"hi\\"\\\\now"'
    assert toml_value(["a", "b"]) == '["a", "b"]'
    assert (toml_value(True), toml_value(5), toml_value(4.0)) == ("true", "5", "4.0")


def test_project_toml_reads_back_with_paths_relative_to_the_file(tmp_path):
    data = tmp_path / "data"
    project = Project(
        catalog=CatalogSource(path=data / "shop.jsonl", id="sku", facets=["category", "brand"], date="released"),
        interactions=None,
        store=StoreTarget(url="http://127.0.0.1:8000", artifacts=tmp_path / "artifacts"),
    )
    text = project_toml(project, tmp_path)
    assert 'path = "data/shop.jsonl"' in text and 'artifacts = "artifacts"' in text  # portable: relative
    assert "[interactions]" not in text
    (tmp_path / "sub").mkdir()
    moved = tmp_path / "sub" / "recsage.toml"  # read from another folder, the relative paths move with it
    moved.write_text(text)
    again = read_project(moved)
    assert again.catalog.path == tmp_path / "sub" / "data" / "shop.jsonl"
    assert again.catalog.facets == ["category", "brand"] and again.catalog.date == "released"
    assert again.store.url == "http://127.0.0.1:8000" and again.interactions is None


def test_movielens_mapping_round_trips(tmp_path):
    project = movielens_project(tmp_path / "ml", store=tmp_path / "store", posters=tmp_path / "posters")
    file = tmp_path / "recsage.toml"
    file.write_text(project_toml(project))
    again = read_project(file)
    assert again.model_dump(exclude={"source"}) == project.model_dump(exclude={"source"})
    assert again.store.artifacts_dir == tmp_path / "store"  # default artefacts: the store folder


def test_command_args_name_the_project_as_a_command_line_does(tmp_path, monkeypatch):
    ml = movielens_project(Path("/d/ml"), store=Path("/s"))
    assert ml.command_args() == "--movielens /d/ml --store /s"
    served = movielens_project(Path("/d/ml"), url="http://h:1", artifacts=Path("/a"))
    assert served.command_args() == "--movielens /d/ml --chroma-url http://h:1 --artifacts /a"
    file = tmp_path / "p.toml"
    file.write_text(project_toml(ml))
    assert read_project(file).command("ingest") == f"recsage ingest --project {file}"
    local = tmp_path / "recsage.toml"
    local.write_text(project_toml(ml))
    monkeypatch.chdir(tmp_path)
    assert read_project(local).command("ingest") == "recsage ingest"  # every command finds ./recsage.toml


def test_an_interactions_free_project_says_what_needs_one():
    project = Project(catalog=CatalogSource(path=Path("c.jsonl")), store=StoreTarget(path=Path("s")), source="p.toml")
    with pytest.raises(InputError, match=r"p.toml has no \[interactions\]"):
        project.require_interactions()
