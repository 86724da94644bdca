"""The root ``recsage`` group, the ``bench`` group and what every command module shares: settings
from the context, JSON output (``--json`` prints, ``--out FILE`` writes), the store and MovieLens
options, and opening the retriever. Command modules import this module only (never each other);
``agent.cli.main`` imports the command modules, which attaches their commands to :data:`cli`."""

from __future__ import annotations

from pathlib import Path

import click

from agent.core.config import Settings, default_data_dir, load_settings
from agent.core.errors import InputError, RecsageError
from agent.core.io import dumps_json, write_json


class RecsageGroup(click.Group):
    """Turns RecsageError into a one-line message and the right exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RecsageError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=RecsageGroup)
@click.option("--config", "config_file", type=click.Path(path_type=Path), envvar="RECSAGE_CONFIG",
              help="TOML settings file (see README for the keys).")
@click.option("--threads", type=int, default=None, help="torch/onnxruntime threads per process.")
@click.version_option(package_name="recsage")
@click.pass_context
def cli(ctx, config_file, threads):
    """recsage: multimodal, LLM-centric recommendations that explain themselves."""
    cache: dict = {}

    def factory() -> Settings:
        if "s" not in cache:
            cache["s"] = load_settings(config_file, threads=threads)
        return cache["s"]

    ctx.obj = {"settings_factory": factory}


@cli.group()
def bench():
    """Benchmarks that print a table."""


def settings(ctx: click.Context) -> Settings:
    """The settings of this invocation (``--config``, ``--threads``), loaded once on first use."""
    return ctx.find_root().obj["settings_factory"]()


# --- output: --json prints JSON to stdout, --out FILE writes it ----------------------------------


def emit_json(data) -> None:
    click.echo(dumps_json(data, indent=2))


def json_option(help: str = "Print the result as JSON to stdout (instead of the text output)."):
    return click.option("--json", "as_json", is_flag=True, help=help)


def out_option(help: str = "Also write the result as JSON to this file."):
    return click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help=help)


def output_options(fn):
    """``--json`` (print JSON to stdout) and ``--out FILE`` (write JSON to a file), as every command has them."""
    return json_option()(out_option()(fn))


def report(data, as_json: bool, out_file: Path | None) -> bool:
    """Write ``data`` to ``--out`` and print it for ``--json``; True when the caller prints its text form."""
    if out_file is not None:
        write_json(Path(out_file), data)
    if as_json:
        emit_json(data)
    return not as_json


# --- store and data options ----------------------------------------------------------------------


def store_or_server_options(fn):
    """``--store DIR`` or ``--chroma-url URL`` (ingest and search work against either)."""
    fn = click.option("--chroma-url", default=None, help="Use a `chroma run` server instead of --store.")(fn)
    fn = click.option("--store", "store_dir", type=click.Path(path_type=Path), default=None,
                      help="Embedded Chroma folder.")(fn)
    return fn


def require_store(store_dir, chroma_url) -> None:
    if store_dir is None and chroma_url is None:
        raise InputError("pass --store DIR (embedded Chroma) or --chroma-url URL (a `chroma run` server)")


def open_store(store_dir, chroma_url):
    from agent.ingest.store import Store

    require_store(store_dir, chroma_url)
    return Store(path=store_dir, url=chroma_url)


def default_movielens() -> Path | None:
    data = default_data_dir()
    return data / "ml-latest-small" if data else None


def movielens_option(fn):
    return click.option("--movielens", type=click.Path(path_type=Path), default=default_movielens,
                        show_default="RECSAGE_DATA/ml-latest-small",
                        help="MovieLens folder whose ratings.csv defines users and the protocol split.")(fn)


def store_option(fn):
    return click.option("--store", "store_dir", type=click.Path(path_type=Path), required=True,
                        help="Embedded Chroma folder made by `recsage ingest` (retriever models live beside it).")(fn)


def require_movielens(movielens) -> None:
    if movielens is None:
        raise InputError("no MovieLens folder: pass --movielens DIR or set RECSAGE_DATA")


def open_retriever(ctx, store_dir, movielens):
    """The store's retriever, after checking the MovieLens folder and the store exist."""
    from agent.retrieval.retriever import open_retriever as open_

    require_movielens(movielens)
    if not (Path(store_dir) / "chroma.sqlite3").exists():
        raise InputError(f"no store at {store_dir}: run `recsage ingest --movielens DIR --store {store_dir}` first")
    return open_(store_dir, movielens, settings(ctx))
