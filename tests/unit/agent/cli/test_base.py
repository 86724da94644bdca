"""The shared CLI pieces: `--json` prints JSON to stdout, `--out FILE` writes it; THE project of an
invocation (project file, legacy flags, both, neither) and what is missing before a command runs."""

import json

import click
import pytest
from click.testing import CliRunner

from agent.cli.base import (
    NO_PROJECT,
    ProjectFlags,
    output_options,
    report,
    resolve_project,
)
from agent.cli.main import cli
from agent.core.errors import InputError
from agent.core.project import read_project


@click.command()
@output_options
def _echo_command(as_json, out_file):
    if report({"answer": "é", "n": 3}, as_json, out_file):
        click.echo("text form")


def test_json_prints_and_out_writes(tmp_path):
    runner = CliRunner()
    assert runner.invoke(_echo_command, []).output == "text form\n"
    printed = runner.invoke(_echo_command, ["--json"])
    assert json.loads(printed.output) == {"answer": "é", "n": 3}
    out = tmp_path / "sub" / "r.json"
    both = runner.invoke(_echo_command, ["--json", "--out", str(out)])
    assert json.loads(both.output) == json.loads(out.read_text(encoding="utf-8")) == {"answer": "é", "n": 3}
    assert runner.invoke(_echo_command, ["--out", str(out)]).output == "text form\n"


def test_every_command_that_prints_json_also_writes_it(tmp_path):
    """No command takes `--json FILE` any more: where there is `--json` it is a flag, beside `--out FILE`."""
    def walk(group, path):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from walk(command, path + [name])
            yield path + [name], command

    for path, command in walk(cli, []):
        options = {opt: p for p in command.params if isinstance(p, click.Option) for opt in p.opts}
        if "--json" in options:
            assert options["--json"].is_flag, path
            assert "--out" in options, path


def test_models_list_out_file_matches_json(tmp_path):
    out = tmp_path / "models.json"
    env = {"RECSAGE_HOME": str(tmp_path)}
    printed = CliRunner().invoke(cli, ["models", "list", "--json", "--out", str(out)], env=env)
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == json.loads(out.read_text())


SHOP = """[catalog]
path = "catalog.jsonl"
id = "sku"
facets = ["category"]
[interactions]
path = "events.csv"
user = "customer"
item = "sku"
time = "ts"
[store]
path = "store"
artifacts = "artifacts"
"""


def _shop(folder):
    (folder / "recsage.toml").write_text(SHOP)
    return folder / "recsage.toml"


def test_the_project_file_in_the_working_folder_or_named(tmp_path):
    _shop(tmp_path)
    found = resolve_project(ProjectFlags(), cwd=tmp_path)
    assert found.catalog.path == tmp_path / "catalog.jsonl" and found.catalog.id == "sku"
    assert found.interactions.path == tmp_path / "events.csv"
    assert found.store.artifacts_dir == tmp_path / "artifacts"
    named = resolve_project(ProjectFlags(), project_file=tmp_path / "recsage.toml", cwd=tmp_path / "elsewhere")
    assert named.model_dump() == found.model_dump()
    with pytest.raises(InputError, match="project file not found: .*nope.toml"):
        resolve_project(ProjectFlags(), project_file=tmp_path / "nope.toml")


def test_legacy_flags_alone_mean_a_movielens_project(tmp_path, monkeypatch):
    got = resolve_project(ProjectFlags(movielens=tmp_path / "ml", store=tmp_path / "s"), cwd=tmp_path)
    assert got.catalog.format == "movielens" and got.catalog.path == tmp_path / "ml"
    assert got.interactions.path == tmp_path / "ml" / "ratings.csv" and got.interactions.item == "movieId"
    assert got.store.path == tmp_path / "s" and got.store.artifacts_dir == tmp_path / "s"
    monkeypatch.setenv("RECSAGE_DATA", str(tmp_path / "data"))  # --store alone: RECSAGE_DATA's MovieLens, as before
    default = resolve_project(ProjectFlags(store=tmp_path / "s"), cwd=tmp_path)
    assert default.catalog.path == tmp_path / "data" / "ml-latest-small"
    served = resolve_project(ProjectFlags(movielens=tmp_path / "ml", chroma_url="http://h:1", artifacts=tmp_path / "a"),
                             cwd=tmp_path)
    assert served.store.url == "http://h:1" and served.store.artifacts_dir == tmp_path / "a"


def test_flags_override_the_sections_of_the_file_they_name(tmp_path):
    _shop(tmp_path)
    store = resolve_project(ProjectFlags(store=tmp_path / "other"), cwd=tmp_path)
    assert store.store.path == tmp_path / "other" and store.store.artifacts_dir == tmp_path / "other"
    assert store.catalog.id == "sku"  # the catalog stays the file's
    artifacts = resolve_project(ProjectFlags(artifacts=tmp_path / "a2"), cwd=tmp_path)
    assert artifacts.store.path == tmp_path / "store" and artifacts.store.artifacts_dir == tmp_path / "a2"
    ml = resolve_project(ProjectFlags(movielens=tmp_path / "ml"), cwd=tmp_path)
    assert ml.catalog.format == "movielens" and ml.interactions.user == "userId"
    assert ml.store.path == tmp_path / "store"  # the store stays the file's
    with pytest.raises(InputError, match="--posters goes with a MovieLens catalog"):
        resolve_project(ProjectFlags(posters=tmp_path / "p"), cwd=tmp_path)


def test_neither_file_nor_flags_says_how_to_get_a_project(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSAGE_DATA", raising=False)
    with pytest.raises(InputError) as neither:
        resolve_project(ProjectFlags(), cwd=tmp_path)
    assert str(neither.value) == NO_PROJECT and "recsage init" in NO_PROJECT and "--project FILE" in NO_PROJECT
    with pytest.raises(InputError, match="no recsage.toml here"):
        resolve_project(ProjectFlags(store=tmp_path / "s", movielens_default=False), cwd=tmp_path)
    with pytest.raises(InputError, match="--movielens DIR needs --store DIR"):
        resolve_project(ProjectFlags(movielens=tmp_path / "ml"), cwd=tmp_path)
    served = resolve_project(ProjectFlags(movielens=tmp_path / "ml", chroma_url="http://h:1"), cwd=tmp_path)
    with pytest.raises(InputError, match="needs a folder: set artifacts"):
        served.store.artifacts_dir  # ingest and search need no artefacts; the retriever does


def test_commands_read_the_project_file_and_say_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECSAGE_DATA", raising=False)
    runner = CliRunner()
    neither = runner.invoke(cli, ["recommend", "--history", "1"])
    assert neither.exit_code == 2 and "no recsage.toml here" in neither.output
    _shop(tmp_path)
    no_store = runner.invoke(cli, ["recommend", "--history", "1"])
    assert no_store.exit_code == 2
    assert f"no store at {tmp_path / 'store'}: run `recsage ingest` first" in no_store.output  # the file is found
    shown = runner.invoke(cli, ["project", "--store", str(tmp_path / "s2"), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["store"]["path"] == str(tmp_path / "s2")
    named = runner.invoke(cli, ["--project", str(tmp_path / "recsage.toml"), "project"], env={"RECSAGE_PROJECT": ""})
    assert named.exit_code == 0 and 'id = "sku"' in named.output
    assert read_project(tmp_path / "recsage.toml").catalog.id == "sku"


def test_finetune_takes_its_recipe_with_recipe_not_config():
    runner = CliRunner()
    missing = runner.invoke(cli, ["finetune"])
    assert missing.exit_code == 2 and "--recipe FILE" in missing.output
    old = runner.invoke(cli, ["finetune", "--config", "finetune/configs/rerank.toml"])
    assert old.exit_code == 2 and "No such option" in old.output
