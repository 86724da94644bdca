"""``recsage finetune``: build reranker training data, train LoRA (QLoRA on CUDA), merge."""

from __future__ import annotations

import random
from pathlib import Path

import click

from agent.cli.base import (
    benchmark_movielens,
    cli,
    open_retriever,
    out_option,
    project,
    project_options,
    report,
    settings,
)
from agent.cli.ray_options import ray_engine, ray_options
from agent.core.errors import InputError
from agent.core.io import write_json, write_jsonl


@cli.group(invoke_without_command=True)
@click.option("--recipe", "recipe_file", type=click.Path(path_type=Path), default=None,
              help="Training recipe (TOML), e.g. finetune/configs/rerank.toml.")
@click.option("--qlora", is_flag=True, help="Load the base model in 4 bits (bitsandbytes; needs a CUDA GPU).")
@click.option("--max-minutes", type=float, default=None, help="Stop cleanly after this long; rerun to resume.")
@click.option("--json", "as_json", is_flag=True, help="Print the training card as JSON.")
@out_option("Also write the training card as JSON to this file.")
@click.pass_context
def finetune(ctx, recipe_file, qlora, max_minutes, as_json, out_file):
    """Train a LoRA adapter: `recsage finetune --recipe FILE` (resumes from its last checkpoint)."""
    if ctx.invoked_subcommand is not None:
        return
    if recipe_file is None:
        raise click.UsageError("pass --recipe FILE (see finetune/configs/) or a subcommand")
    from finetune.lora.config import load_config
    from finetune.lora.trainer import train_lora

    recipe = load_config(recipe_file, qlora=True if qlora else None, max_minutes=max_minutes)
    card = train_lora(recipe)
    if not report(card, as_json, out_file):
        return
    state = "complete" if card.get("complete") else f"stopped: {card.get('stopped')}"
    click.echo(f"{card['steps']} steps, {card['examples_per_s']:.2f} examples/s, final validation loss "
               f"{card.get('final_val_loss')}; adapter {card['adapter']}; {state}", err=True)


@finetune.command("data")
@project_options()
@click.option("-n", "n", type=click.IntRange(min=0), default=600, show_default=True, help="Synthetic requests.")
@click.option("--sequential", type=click.IntRange(min=0), default=0, show_default=True,
              help="Sliding windows over training sequences (candidates from the hybrid retriever).")
@click.option("--negatives", type=click.IntRange(min=1), default=3, show_default=True, help="Hard negatives per example.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/finetune/rerank_train.jsonl"), show_default=True)
@ray_options("the sequential windows' candidate retrieval", "retrieval actors")
@click.pass_context
def finetune_data(ctx, n, sequential, negatives, seed, out, engine, ray_address, ray_actors, ray_actor_cpus):
    """Pointwise reranker rows from training data only: synthetic requests from catalog facts (never the
    benchmark's) and sequential windows; writes the rows and a data card (<out>.card.json). The store
    holds the context cards the reranker reads and, for --sequential, the trained retriever."""
    from agent.rerank.reranker import LlmReranker

    if n == 0 and sequential == 0:
        raise InputError("nothing to build: pass -n N requests and/or --sequential N windows")
    options = ray_engine(engine, ray_address, ray_actors, ray_actor_cpus)
    if options is not None and n:
        click.echo("note: --engine ray retrieves the --sequential windows' candidates; the synthetic requests "
                   "(-n) are built in this process (one random sequence decides which draws are kept)", err=True)
    reranker = LlmReranker(settings(ctx), words=project(ctx).words)  # a shop trains on the shop's prompt
    rows, card = [], {"output": str(out)}
    if n:
        request_rows, card["request"] = _request_rows(ctx, n, negatives, seed, out, reranker)
        rows += request_rows
    if sequential:
        seq_rows, card["sequential"] = _sequence_rows(ctx, sequential, negatives, seed, reranker, options)
        rows += seq_rows
    random.Random(seed).shuffle(rows)
    card["rows_total"] = len(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(out, rows)
    write_json(out.with_name(out.stem + ".card.json"), card)
    click.echo(f"{len(rows)} rows in {out} (data card {out.stem}.card.json)", err=True)


def _request_rows(ctx, n, negatives, seed, out, reranker) -> tuple[list[dict], dict]:
    from agent.retrieval.retriever import open_project_store
    from finetune.rerank_data.requests import build_request_examples, write_examples
    from finetune.rerank_data.rows import build_rerank_rows

    # synthetic requests keep the request benchmark's (MovieLens) items out of training
    examples = build_request_examples(benchmark_movielens(project(ctx)), n, seed=seed)
    request_card = write_examples(examples, out.with_name(out.stem + ".requests.jsonl"))
    ids = sorted({e["positive"] for e in examples} | {i for e in examples for i in e["negatives"][:negatives]})
    cards = {i: r["document"] for i, r in open_project_store(project(ctx)).get(ids).items()}
    rows = build_rerank_rows(examples, reranker, cards, negatives, seed)
    return rows, {"requests": len(examples), "rows": len(rows), "card": str(request_card)}


def _sequence_rows(ctx, windows, negatives, seed, reranker, options=None) -> tuple[list[dict], dict]:
    """Sequential rows; ``options``: the windows' candidates from Ray actors (the same rows)."""
    from eval.rerank_seq import catalog_text
    from finetune.rerank_data.sequences import build_sequence_rows

    retriever = open_retriever(ctx)
    cards, titles = catalog_text(retriever)
    depth, notes, candidates = settings(ctx).rerank_depth, [], None
    if options is not None:
        from finetune.ray_data import ray_candidates

        candidates = ray_candidates(project(ctx), settings(ctx), depth, options, notes=notes)
    rows, card = build_sequence_rows(retriever, reranker, cards, titles, windows, depth=depth, negatives=negatives,
                                     seed=seed, candidates=candidates)
    for note in notes:
        click.echo(note, err=True)
    return rows, card


@finetune.command("merge")
@click.option("--adapter", type=click.Path(path_type=Path), required=True, help="Adapter folder (OUTPUT/adapter).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Merged model folder to write.")
@click.option("--base", type=click.Path(path_type=Path), default=None, help="Base model (default: recorded in the adapter).")
def finetune_merge(adapter, out, base):
    """Merge an adapter into its base and save a plain model folder (safetensors + tokenizer)."""
    from finetune.lora.merge import merge_adapter

    click.echo(str(merge_adapter(base, adapter, out)))
