"""``recsage finetune``: build reranker training data, train LoRA (QLoRA on CUDA), merge."""

from __future__ import annotations

import json
import random
from pathlib import Path

import click

from agent.cli.main import _emit_json, _settings, cli
from agent.cli.retrieval import _default_movielens
from agent.core.errors import InputError


@cli.group(invoke_without_command=True)
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="Training config (TOML), e.g. finetune/configs/rerank.toml.")
@click.option("--qlora", is_flag=True, help="Load the base model in 4 bits (bitsandbytes; needs a CUDA GPU).")
@click.option("--max-minutes", type=float, default=None, help="Stop cleanly after this long; rerun to resume.")
@click.option("--json", "as_json", is_flag=True, help="Print the training card as JSON.")
@click.pass_context
def finetune(ctx, config_file, qlora, max_minutes, as_json):
    """Train a LoRA adapter: `recsage finetune --config FILE` (resumes from its last checkpoint)."""
    if ctx.invoked_subcommand is not None:
        return
    if config_file is None:
        raise click.UsageError("pass --config FILE (see finetune/configs/) or a subcommand")
    from finetune.lora.trainer import load_config, train_lora

    config = load_config(config_file, qlora=True if qlora else None, max_minutes=max_minutes)
    card = train_lora(config)
    if as_json:
        _emit_json(card)
        return
    state = "complete" if card.get("complete") else f"stopped: {card.get('stopped')}"
    click.echo(f"{card['steps']} steps, {card['examples_per_s']:.2f} examples/s, final validation loss "
               f"{card.get('final_val_loss')}; adapter {card['adapter']}; {state}", err=True)


@finetune.command("data")
@click.option("--store", "store_dir", type=click.Path(path_type=Path), required=True,
              help="Store with the catalog's context cards (the reranker reads them) and, for --sequential, "
                   "the trained retriever.")
@click.option("--movielens", type=click.Path(path_type=Path), default=_default_movielens)
@click.option("-n", "n", type=click.IntRange(min=0), default=600, show_default=True, help="Synthetic requests.")
@click.option("--sequential", type=click.IntRange(min=0), default=0, show_default=True,
              help="Sliding windows over training sequences (candidates from the hybrid retriever).")
@click.option("--negatives", type=click.IntRange(min=1), default=3, show_default=True, help="Hard negatives per example.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/finetune/rerank_train.jsonl"), show_default=True)
@click.pass_context
def finetune_data(ctx, store_dir, movielens, n, sequential, negatives, seed, out):
    """Pointwise reranker rows from training data only: synthetic requests from catalog facts (never the
    benchmark's) and sequential windows; writes the rows and a data card (<out>.card.json)."""
    from agent.rerank.reranker import LlmReranker

    if n == 0 and sequential == 0:
        raise InputError("nothing to build: pass -n N requests and/or --sequential N windows")
    reranker = LlmReranker(_settings(ctx))
    rows, card = [], {"output": str(out)}
    if n:
        request_rows, card["request"] = _request_rows(store_dir, movielens, n, negatives, seed, out, reranker)
        rows += request_rows
    if sequential:
        seq_rows, card["sequential"] = _sequence_rows(ctx, store_dir, movielens, sequential, negatives, seed, reranker)
        rows += seq_rows
    random.Random(seed).shuffle(rows)
    card["rows_total"] = len(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out.with_name(out.stem + ".card.json").write_text(json.dumps(card, indent=1))
    click.echo(f"{len(rows)} rows in {out} (data card {out.stem}.card.json)", err=True)


def _request_rows(store_dir, movielens, n, negatives, seed, out, reranker) -> tuple[list[dict], dict]:
    from agent.ingest.store import Store
    from finetune.rerank_data.requests import build_request_examples, write_examples
    from finetune.rerank_data.rows import build_rerank_rows

    examples = build_request_examples(movielens, n, seed=seed)
    request_card = write_examples(examples, out.with_name(out.stem + ".requests.jsonl"))
    ids = sorted({e["positive"] for e in examples} | {i for e in examples for i in e["negatives"][:negatives]})
    cards = {i: r["document"] for i, r in Store(store_dir).get(ids).items()}
    rows = build_rerank_rows(examples, reranker, cards, negatives, seed)
    return rows, {"requests": len(examples), "rows": len(rows), "card": str(request_card)}


def _sequence_rows(ctx, store_dir, movielens, windows, negatives, seed, reranker) -> tuple[list[dict], dict]:
    from agent.cli.retrieval import _retriever
    from eval.rerank_seq import catalog_text
    from finetune.rerank_data.sequences import build_sequence_rows

    retriever = _retriever(ctx, store_dir, movielens)
    cards, titles = catalog_text(retriever)
    return build_sequence_rows(retriever, reranker, cards, titles, windows,
                               depth=_settings(ctx).rerank_depth, negatives=negatives, seed=seed)


@finetune.command("merge")
@click.option("--adapter", type=click.Path(path_type=Path), required=True, help="Adapter folder (OUTPUT/adapter).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Merged model folder to write.")
@click.option("--base", type=click.Path(path_type=Path), default=None, help="Base model (default: recorded in the adapter).")
def finetune_merge(adapter, out, base):
    """Merge an adapter into its base and save a plain model folder (safetensors + tokenizer)."""
    from finetune.lora.trainer import merge_adapter

    click.echo(str(merge_adapter(base, adapter, out)))
