"""Retrieval commands: ``train-retriever`` and ``bench retrieve`` (``eval`` lives in agent.cli.evaluate,
``recommend`` in agent.cli.recommend)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import (
    bench,
    cli,
    open_retriever,
    output_options,
    project,
    project_options,
    report,
    settings,
)
from agent.core.errors import InputError

RETRIEVER_MODELS = ("ease", "sasrec")


@cli.command("train-retriever")
@project_options()
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-minutes", type=float, default=0.0, show_default=True,
              help="Stop SASRec training after this long (0: early stopping only). Resumes from its checkpoint.")
@click.option("--models", "models", default=",".join(RETRIEVER_MODELS), show_default=True,
              help="Models to train: \"ease\" alone is the fast mode (EASE + content, about a minute).")
@click.option("--sasrec-epochs", type=click.IntRange(min=1), default=None,
              help="Cap SASRec's epochs (default: early stopping decides): a short run that gives the same "
                   "model on every machine, unlike --max-minutes.")
@click.option("--force", is_flag=True,
              help="Retrain from scratch even if the data did not change (a rerun otherwise reuses or warm-starts).")
@output_options
@click.pass_context
def train_retriever_cmd(ctx, seed, max_minutes, models, sasrec_epochs, force, as_json, out_file):
    """Train EASE + SASRec on the training split, store SASRec item vectors in Chroma, pick hybrid weights on validation."""
    from finetune.retriever.pipeline import train_retriever
    from finetune.retriever.sasrec_config import SasrecConfig

    chosen = tuple(m.strip() for m in models.split(",") if m.strip())
    unknown = [m for m in chosen if m not in RETRIEVER_MODELS]
    if unknown or "ease" not in chosen:
        raise InputError(f"--models takes ease or ease,sasrec, got {models!r}")
    open_retriever(ctx, report_data=True)  # validates the project and the store before minutes of training
    summary = train_retriever(project(ctx), settings(ctx), seed=seed, max_minutes=max_minutes, models=chosen,
                              force=force, sasrec_config=SasrecConfig(epochs=sasrec_epochs) if sasrec_epochs else None)
    if report(summary, as_json, out_file):
        click.echo(f"hybrid weights {summary['hybrid']['weights']} "
                   f"(validation NDCG@10 {summary['hybrid']['val']['NDCG@10']:.4f}); "
                   f"{summary['timings_seconds']['train_retriever_total']:.0f} s", err=True)


@bench.command("retrieve")
@project_options()
@click.option("--users", type=int, default=100, show_default=True)
@output_options
@click.pass_context
def bench_retrieve(ctx, users, as_json, out_file):
    """Per-user latency, history -> top 50 candidates (scores + Chroma fetch), per system."""
    from eval.bench.retrieve import bench_retrieve as run

    rows = run(open_retriever(ctx), users)
    if not report(rows, as_json, out_file):
        return
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("system", "users", "p50 ms", "p95 ms", "max ms", title="retrieval latency, history -> top 50")
    for r in rows:
        table.add_row(r["system"], str(r["users"]), f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['max_ms']:.1f}")
    table_console().print(table)


@cli.command("train-dialogues")
@project_options()
@click.option("--dialogues", "dialogues_file", type=click.Path(path_type=Path), required=True,
              help="ReDial TRAINING dialogues (RECSAGE_DATA/redial/train_data.jsonl), never the ones you evaluate on.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N dialogues.")
@output_options
@click.pass_context
def train_dialogues_cmd(ctx, dialogues_file, limit, as_json, out_file):
    """Count what recommenders named and which movies were named together in training dialogues:
    the dialogue prior the conversation retrieval fuses (<artifacts>/dialogues/)."""
    from agent.cli.base import chat_catalog
    from finetune.dialogues import train_dialogue_prior

    catalog = chat_catalog(ctx)
    summary = train_dialogue_prior(dialogues_file, catalog.items.values(), catalog.rating_counts(),
                                   project(ctx).store.artifacts_dir, limit)
    if report(summary, as_json, out_file):
        click.echo(f"{summary['dialogues']} dialogues, {summary['movies']} movies, {summary['pairs']} pairs "
                   f"-> {summary['path']}", err=True)
