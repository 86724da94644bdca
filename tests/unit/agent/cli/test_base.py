"""The shared CLI pieces: `--json` prints JSON to stdout, `--out FILE` writes it; store and data checks."""

import json

import click
import pytest
from click.testing import CliRunner

from agent.cli.base import open_retriever, output_options, report, require_store
from agent.cli.main import cli
from agent.core.errors import InputError


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


def test_require_store_and_open_retriever_say_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="--store DIR"):
        require_store(None, None)
    ctx = click.Context(cli, obj={"settings_factory": lambda: None})
    with pytest.raises(InputError, match="RECSAGE_DATA"):
        open_retriever(ctx, tmp_path, None)
    with pytest.raises(InputError, match="recsage ingest"):
        open_retriever(ctx, tmp_path, tmp_path)


def test_finetune_takes_its_recipe_with_recipe_not_config():
    runner = CliRunner()
    missing = runner.invoke(cli, ["finetune"])
    assert missing.exit_code == 2 and "--recipe FILE" in missing.output
    old = runner.invoke(cli, ["finetune", "--config", "finetune/configs/rerank.toml"])
    assert old.exit_code == 2 and "No such option" in old.output
