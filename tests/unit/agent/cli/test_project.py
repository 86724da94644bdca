"""`recsage init` writes a project file that reads back; it never overwrites one without --force."""

import re
import tomllib

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.cli.project import template
from agent.core.project import (
    SECTIONS,
    CatalogSource,
    InteractionsSource,
    StoreTarget,
    read_project,
)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECSAGE_PROJECT", raising=False)
    return tmp_path


def _commented_keys(text: str, section: str) -> set[str]:
    body = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
    keys = re.findall(r"^(?:# )?([a-z_]+) = ", body, flags=re.MULTILINE)  # set or commented out
    return set(keys)


def test_template_names_every_key_and_parses(folder):
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    text = (folder / "recsage.toml").read_text()
    for section, model in zip(SECTIONS, (CatalogSource, InteractionsSource, StoreTarget), strict=True):
        assert _commented_keys(text, section) == set(model.model_fields), section
        for info in model.model_fields.values():
            assert f"# {info.description}" in text  # each key explained
    project = read_project(folder / "recsage.toml")
    assert project.catalog.path == folder / "catalog.jsonl" and project.catalog.facets == ["category", "brand"]
    assert project.interactions.min_rating is None  # optional keys are commented out
    assert project.store.path == folder / "store" and project.store.artifacts_dir == folder / "artifacts"
    assert tomllib.loads(template()) == tomllib.loads(text)


def test_movielens_mapping_parses(folder):
    ml = folder / "data" / "ml"
    ml.mkdir(parents=True)
    (ml / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Animation\n")
    (folder / "data" / "posters").mkdir()
    result = CliRunner().invoke(cli, ["init", "--movielens", str(ml)])
    assert result.exit_code == 0, result.output
    project = read_project(folder / "recsage.toml")
    assert project.catalog.format == "movielens" and project.catalog.path == ml
    assert project.catalog.posters == folder / "data" / "posters"
    assert project.interactions.path == ml / "ratings.csv"
    assert (project.interactions.user, project.interactions.item, project.interactions.time) == (
        "userId", "movieId", "timestamp")
    assert project.store.path == folder / "store" and project.store.artifacts == folder / "artifacts"
    assert 'path = "store"' in (folder / "recsage.toml").read_text()  # relative: the folder can move


def test_no_overwrite_without_force_and_root_project_names_the_file(folder):
    runner = CliRunner()
    (folder / "recsage.toml").write_text("# mine\n")
    refused = runner.invoke(cli, ["init"])
    assert refused.exit_code == 2 and "--force" in refused.output
    assert (folder / "recsage.toml").read_text() == "# mine\n"
    assert runner.invoke(cli, ["init", "--force"]).exit_code == 0
    assert (folder / "recsage.toml").read_text() != "# mine\n"
    other = runner.invoke(cli, ["--project", str(folder / "p" / "shop.toml"), "init"])
    assert other.exit_code == 0 and read_project(folder / "p" / "shop.toml").catalog.path == folder / "p" / "catalog.jsonl"
    bad = runner.invoke(cli, ["init", "--movielens", str(folder / "nothing"), "--force"])
    assert bad.exit_code == 2 and "movies.csv not found" in bad.output


def test_init_show_prints_the_resolved_project(folder):
    CliRunner().invoke(cli, ["init"])
    shown = CliRunner().invoke(cli, ["init", "--show"])
    assert shown.exit_code == 0 and f'path = "{folder / "catalog.jsonl"}"' in shown.output
