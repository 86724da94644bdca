"""Retrieval commands: ``train-retriever`` and ``bench retrieve`` (``eval`` lives in agent.cli.evaluate,
``recommend`` in agent.cli.recommend)."""

from __future__ import annotations

import click

from agent.cli.base import (
    bench,
    cli,
    movielens_option,
    open_retriever,
    output_options,
    report,
    settings,
    store_option,
)


@cli.command("train-retriever")
@store_option
@movielens_option
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-minutes", type=float, default=0.0, show_default=True,
              help="Stop SASRec training after this long (0: early stopping only). Resumes from its checkpoint.")
@output_options
@click.pass_context
def train_retriever_cmd(ctx, store_dir, movielens, seed, max_minutes, as_json, out_file):
    """Train EASE + SASRec on the training split, store SASRec item vectors in Chroma, pick hybrid weights on validation."""
    from finetune.retriever.pipeline import train_retriever

    open_retriever(ctx, store_dir, movielens)  # validates paths before minutes of training
    summary = train_retriever(store_dir, movielens, settings(ctx), seed=seed, max_minutes=max_minutes)
    if report(summary, as_json, out_file):
        click.echo(f"hybrid weights {summary['hybrid']['weights']} "
                   f"(validation NDCG@10 {summary['hybrid']['val']['NDCG@10']:.4f}); "
                   f"{summary['timings_seconds']['train_retriever_total']:.0f} s", err=True)


@bench.command("retrieve")
@store_option
@movielens_option
@click.option("--users", type=int, default=100, show_default=True)
@output_options
@click.pass_context
def bench_retrieve(ctx, store_dir, movielens, users, as_json, out_file):
    """Per-user latency, history -> top 50 candidates (scores + Chroma fetch), per system."""
    from eval.bench.retrieve import bench_retrieve as run

    rows = run(open_retriever(ctx, store_dir, movielens), users)
    if not report(rows, as_json, out_file):
        return
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("system", "users", "p50 ms", "p95 ms", "max ms", title="retrieval latency, history -> top 50")
    for r in rows:
        table.add_row(r["system"], str(r["users"]), f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['max_ms']:.1f}")
    table_console().print(table)
