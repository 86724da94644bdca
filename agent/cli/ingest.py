"""``recsage ingest`` (catalog -> cards + vectors in Chroma), ``recsage search`` and ``recsage bench ingest``."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import (
    bench,
    cli,
    flags,
    open_store,
    output_options,
    project,
    project_options,
    report,
    settings,
    store_target,
)
from agent.cli.ray_options import ray_engine, ray_options
from agent.core.errors import InputError
from agent.core.timing import Stopwatch


@cli.command()
@project_options(movielens_default=False)
@click.option("--catalog", type=click.Path(path_type=Path),
              help="A catalog with recsage's own field names (.jsonl or .csv), instead of the project's.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Ingest only the first N items.")
@ray_options("converters", "converter actors")
@output_options
@click.pass_context
def ingest(ctx, catalog, limit, engine, ray_address, ray_actors, ray_actor_cpus, as_json, out_file):
    """Turn the project's catalog into context cards and vectors in Chroma (resumable, skips unchanged items)."""
    from agent.ingest.catalog import load_catalog, load_source

    given = flags(ctx)
    run_ingest = ingest_engine(engine, ray_address, ray_actors, ray_actor_cpus)
    if catalog and given.movielens:
        raise InputError("give exactly one of --movielens DIR or --catalog FILE")
    if catalog and given.posters:
        raise InputError("--posters goes with --movielens; a generic catalog names images per row")
    target = store_target(ctx)
    config = settings(ctx)
    clock = Stopwatch()
    with clock("load"):
        limit_chars = config.catalog_max_field_chars
        loaded = load_catalog(catalog, limit_chars) if catalog else load_source(project(ctx).catalog, limit_chars)
    items = loaded.items[:limit] if limit else loaded.items
    store = open_store(target)
    source = str(Path(catalog).resolve()) if catalog else str(project(ctx).catalog.path)
    result = run_ingest(items, store, config, rejected=loaded.rejected, progress=True, prune=not limit, source=source)
    result.seconds["load"] = clock.seconds["load"]
    summary = result.to_json()
    summary["seconds"]["total"] = round(clock.totals()["total"], 3)
    if report(summary, as_json, out_file):
        print_ingest_summary(summary)


def ingest_engine(engine: str, address: str | None, actors: int | None, actor_cpus: int):
    """The ingest function for ``--engine``: the one-process pipeline, or the same on Ray."""
    options = ray_engine(engine, address, actors, actor_cpus)
    if options is None:
        from agent.ingest.pipeline import ingest as run

        return run
    from functools import partial

    from agent.ingest.ray_engine import ingest_with_ray

    return partial(ingest_with_ray, options=options)


def print_ingest_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    dropped = [row for row in s["skipped"] if not row.get("kept")]
    console.print(
        f"[bold]ingested {s['ingested']}[/], unchanged {s['unchanged']}, removed {s['removed']}, skipped {len(dropped)}, "
        f"kept without media {len(s['skipped']) - len(dropped)}, media failed {len(s['failed'])}; "
        f"{s['items_in_store']} items in {s['store']}"
    )
    for row in s["skipped"]:
        label = "kept without media" if row.get("kept") else "skipped"
        console.print(f"  {label} {row['file']}:{row['line']}: {row['reason']}")
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
@project_options(store_only=True)
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many results.")
@output_options
@click.pass_context
def search(ctx, text, k, as_json, out_file):
    """Semantic search over the context cards."""
    from agent.retrieval.text_search import search_text

    if k <= 0:
        raise InputError(f"-k must be a positive integer, got {k}")
    if not text.strip():
        raise InputError("the search text is empty")
    results = search_text(open_store(store_target(ctx)), settings(ctx), text, k)
    if not report(results, as_json, out_file):
        return
    for r in results:
        click.echo(f"{r['score']:.3f}  {r['id']:>8}  {r['title']}" + (f" ({r['year']})" if r.get("year") else ""))


@bench.command("ingest")
@click.option("--movielens", type=click.Path(path_type=Path), required=True)
@click.option("--posters", type=click.Path(path_type=Path), default=None)
@click.option("--sample", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--variants", default="1:1,2:1,1:2", show_default=True,
              help="Comma-separated THREADS:OCR_WORKERS settings; the first is the baseline.")
@click.option("--videos", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="A folder of video clips: adds a row of seconds per clip minute for each video stage.")
@output_options
@click.pass_context
def bench_ingest(ctx, movielens, posters, sample, variants, videos, as_json, out_file):
    """Items/s per ingest stage on a sample, per setting (a fresh process each)."""
    from eval.bench.ingest import bench_ingest as run

    try:
        parsed = [tuple(int(x) for x in v.split(":")) for v in variants.split(",")]
    except ValueError:
        raise InputError(f"--variants must look like 1:1,2:1 (threads:ocr_workers), got {variants!r}") from None
    rows = run(movielens, posters, sample, parsed, settings(ctx), videos)
    if report(rows, as_json, out_file):
        print_ingest_bench(rows, sample)


def print_ingest_bench(rows: list[dict], sample: int) -> None:
    from rich.table import Table

    from agent.core.console import table_console
    from eval.bench.ingest import timed_stages

    stages = timed_stages(rows)
    table = Table(title=f"ingest benchmark: {sample} movies (posters first)")
    table.add_column("threads / OCR workers")
    for stage in stages:
        table.add_column(f"{stage} items/s", justify="right")
    table.add_column("vs first row", justify="right")
    base_total = None
    for r in (r for r in rows if "video" not in r):
        total = sum(r["seconds"].get(s, 0.0) for s in stages)
        base_total = base_total or total
        cells = [f"{sample / r['seconds'][s]:.1f}" if r["seconds"].get(s) else "-" for s in stages]
        table.add_row(f"{r['threads']} / {r['ocr_workers']}", *cells, f"{base_total / total:.2f}x")
    table_console().print(table)
    for r in (r for r in rows if "video" in r):
        video = Table("video stage", "seconds per clip minute",
                      title=f"video ingest: {r['video']['clips']} clips, {r['video']['clip_minutes']:.2f} clip minutes, "
                            f"{r['threads']} threads / {r['ocr_workers']} OCR workers")
        for stage, value in sorted(r["seconds_per_clip_minute"].items()):
            video.add_row(stage, f"{value:.1f}")
        table_console().print(video)
