"""The root ``recsage`` group, the ``bench`` group and what every command module shares: settings
from the context, JSON output (``--json`` prints, ``--out FILE`` writes), THE project of an invocation
(``--project FILE`` or ./recsage.toml, its sections overridden by the legacy --movielens/--store flags)
and opening its retriever. Command modules import this module only (never each other);
``agent.cli.main`` imports the command modules, which attaches their commands to :data:`cli`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from agent.core.config import Settings, default_data_dir, load_settings
from agent.core.errors import InputError, RecsageError
from agent.core.io import dumps_json, write_json
from agent.core.project import Project, StoreTarget, find_project, movielens_project


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
@click.option("--project", "project_file", type=click.Path(path_type=Path), envvar="RECSAGE_PROJECT", default=None,
              help="Project file (default: ./recsage.toml): where the catalog, interactions, store and "
                   "artefacts are (`recsage init` writes one).")
@click.version_option(package_name="recsage")
@click.pass_context
def cli(ctx, config_file, threads, project_file):
    """recsage: multimodal, LLM-centric recommendations that explain themselves."""
    cache: dict = {}

    def factory() -> Settings:
        if "s" not in cache:
            cache["s"] = load_settings(config_file, threads=threads)
        return cache["s"]

    ctx.obj = {"settings_factory": factory, "project_file": project_file}


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


# --- the project: a project file, or the legacy MovieLens/store flags ----------------------------

NO_PROJECT = ("no recsage.toml here: run `recsage init` (or `recsage init --movielens DIR`) or pass "
              "--project FILE / --movielens DIR --store DIR")
_FLAGS = "recsage.project_flags"


@dataclass(frozen=True)
class ProjectFlags:
    """The legacy flags of one invocation; given ones override the project file's sections."""

    movielens: Path | None = None
    posters: Path | None = None
    store: Path | None = None
    chroma_url: str | None = None
    artifacts: Path | None = None
    movielens_default: bool = True
    """Without a project file and without --movielens, use RECSAGE_DATA/ml-latest-small (as before)."""

    def store_given(self) -> bool:
        return self.store is not None or self.chroma_url is not None


def default_movielens() -> Path | None:
    data = default_data_dir()
    return data / "ml-latest-small" if data else None


def _store_from_flags(flags: ProjectFlags) -> StoreTarget:
    return StoreTarget.from_mapping({"path": flags.store, "url": flags.chroma_url, "artifacts": flags.artifacts},
                                    source="the command line (--store / --chroma-url / --artifacts)")


def _from_flags(flags: ProjectFlags) -> Project:
    movielens = flags.movielens
    if movielens is None and flags.movielens_default and flags.store_given():
        movielens = default_movielens()
    if movielens is None:
        if flags.store_given():
            raise InputError(f"{NO_PROJECT} (a store alone does not say which catalog)")
        raise InputError(NO_PROJECT)
    if not flags.store_given():
        raise InputError("--movielens DIR needs --store DIR (or --chroma-url URL --artifacts DIR), "
                         "or write a project file with `recsage init --movielens DIR`")
    store = _store_from_flags(flags)
    return movielens_project(movielens, store=store.path, url=store.url, artifacts=store.artifacts,
                             posters=flags.posters)


def _override(project: Project, flags: ProjectFlags) -> Project:
    """The project file with the sections that flags name replaced: --movielens replaces [catalog]
    and [interactions], --store/--chroma-url replace [store], --artifacts alone only its artefacts."""
    changes: dict = {}
    if flags.movielens is not None:
        ml = movielens_project(flags.movielens, store=Path("."), posters=flags.posters)
        changes.update(catalog=ml.catalog, interactions=ml.interactions)
    elif flags.posters is not None:
        if project.catalog.resolved_format() != "movielens":
            raise InputError(f"--posters goes with a MovieLens catalog; {project.source} names images per row "
                             "([catalog] image = \"<column>\")")
        changes["catalog"] = project.catalog.model_copy(update={"posters": flags.posters})
    if flags.store_given():
        changes["store"] = _store_from_flags(flags)
    elif flags.artifacts is not None:
        changes["store"] = project.store.model_copy(update={"artifacts": flags.artifacts})
    return project.model_copy(update=changes) if changes else project


def resolve_project(flags: ProjectFlags, project_file: Path | None = None, cwd: Path | None = None) -> Project:
    """THE project of an invocation: ``--project FILE`` (or ./recsage.toml) with the given legacy
    flags overriding its sections; without a file, the legacy flags alone (a MovieLens project)."""
    found = find_project(project_file, cwd)
    return _from_flags(flags) if found is None else _override(found, flags)


def _remember_flag(ctx: click.Context, param: click.Parameter, value):
    ctx.meta.setdefault(_FLAGS, {})[param.name] = value
    return value


_PROJECT_FLAG_OPTIONS = (
    ("--movielens", Path, ("MovieLens folder: its movies as the catalog, its ratings.csv as the interactions "
                           "(instead of the project file's [catalog] and [interactions]).")),
    ("--posters", Path, "Folder of <movieId>.jpg posters (MovieLens catalogs)."),
    ("--store", Path, "Embedded Chroma folder (instead of the project file's [store])."),
    ("--chroma-url", str, "A `chroma run` server instead of --store (give --artifacts with it)."),
    ("--artifacts", Path, "Folder of the trained retriever and run files (default: the store folder)."),
)


def project_options(movielens_default: bool = True, store_only: bool = False):
    """The legacy flags beside the project file (``--project FILE`` on the root group or ./recsage.toml).

    ``movielens_default``: without a project file, --store alone means RECSAGE_DATA/ml-latest-small.
    ``store_only``: only --store, --chroma-url and --artifacts (commands that read no catalog)."""
    options = _PROJECT_FLAG_OPTIONS[2:] if store_only else _PROJECT_FLAG_OPTIONS

    def decorate(fn):
        for name, kind, help_text in reversed(options):
            fn = click.option(name, type=click.Path(path_type=Path) if kind is Path else str, default=None,
                              expose_value=False, callback=_remember_flag, help=help_text)(fn)
        fn.__recsage_movielens_default__ = movielens_default
        return fn
    return decorate


def flags(ctx: click.Context) -> ProjectFlags:
    given = {k.replace("-", "_"): v for k, v in ctx.meta.get(_FLAGS, {}).items()}
    default = getattr(ctx.command.callback, "__recsage_movielens_default__", True)
    return ProjectFlags(**given, movielens_default=default)


def project(ctx: click.Context) -> Project:
    """The project of this invocation (see :func:`resolve_project`), resolved once."""
    if "recsage.project" not in ctx.meta:
        root = ctx.find_root().obj or {}
        ctx.meta["recsage.project"] = resolve_project(flags(ctx), root.get("project_file"))
    return ctx.meta["recsage.project"]


def store_target(ctx: click.Context) -> StoreTarget:
    """Only the store (ingest, search): the flags' store if given, else the project's."""
    given = flags(ctx)
    if given.store_given():
        return _store_from_flags(given)
    try:
        return project(ctx).store
    except InputError as exc:
        if str(exc) != NO_PROJECT:
            raise
        raise InputError("pass --store DIR (embedded Chroma) or --chroma-url URL (a `chroma run` server), "
                         "or run in a folder with a recsage.toml (`recsage init`)") from None


def open_store(target: StoreTarget):
    from agent.ingest.store import Store

    return Store(path=target.path, url=target.url)


def project_chat_catalog(resolved: Project, config: Settings):
    """The chat's catalog of a project: its items (declared fields) and its interactions log (built
    here: agent.chat may not import agent.retrieval)."""
    from agent.chat.catalog import ChatCatalog
    from agent.ingest.catalog import load_source
    from agent.retrieval.interactions import load_interactions

    items = load_source(resolved.catalog, config.catalog_max_field_chars).items
    frame = None
    if resolved.interactions is not None:
        frame = load_interactions(resolved.interactions, {item.id for item in items}).frame
    return ChatCatalog(items, frame, resolved.words)


def chat_catalog(ctx):
    return project_chat_catalog(project(ctx), settings(ctx))


def benchmark_movielens(project: Project) -> Path:
    """The MovieLens folder of a benchmark whose relevance judgements are MovieLens tags and plots
    (eval/data/requests.jsonl, chat_requests.jsonl)."""
    if project.catalog.resolved_format() != "movielens":
        raise InputError(f"this benchmark judges MovieLens movies; {project.source} has a "
                         f"{project.catalog.resolved_format()} catalog: run it with --movielens DIR")
    return Path(project.catalog.path)


def open_retriever(ctx, report_data: bool = False):
    """The project's retriever (store, trained models, protocol split). ``report_data``: say on stderr
    what the interactions log lost (commands that train or evaluate on it)."""
    from agent.retrieval.retriever import open_retriever as open_

    retriever = open_(project(ctx), settings(ctx))
    data = retriever.data_report
    if report_data and data is not None and data.skipped:
        click.echo(f"interactions: {data.summary()}", err=True)
        for example in data.examples[:5]:
            click.echo(f"  {example}", err=True)
    return retriever
