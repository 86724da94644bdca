"""`recsage train-image-encoder` / `eval-image-encoder`: recipe help, bad recipes, missing runs."""

from __future__ import annotations

from click.testing import CliRunner

from agent.cli.main import cli


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_recipe_help_lists_every_setting():
    result = _run("train-image-encoder", "--recipe-help")
    assert result.exit_code == 0
    for key in ("height", "patch_size", "steps", "heldout_fraction", "checkpoint_every"):
        assert f"\n{key} (" in "\n" + result.output


def test_a_bad_recipe_key_exits_2_naming_it(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("hieght = 96\n")
    result = _run("train-image-encoder", "--recipe", recipe, "--movielens", tmp_path, "--store", tmp_path / "s",
                  "--run-dir", tmp_path / "run")
    assert result.exit_code == 2 and "'hieght'" in result.output


def test_eval_without_a_finished_training_says_what_to_run(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "chroma.sqlite3").write_bytes(b"")
    result = _run("eval-image-encoder", "--movielens", tmp_path, "--store", tmp_path / "s", "--run-dir", tmp_path / "run")
    assert result.exit_code == 2 and "train-image-encoder" in result.output
