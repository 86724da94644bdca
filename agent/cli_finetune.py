"""``recsage finetune``: build reranker training data, train LoRA (QLoRA on CUDA), merge."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agent.cli import _emit_json, _settings, cli
from agent.cli_retrieval import _default_movielens


@cli.group(invoke_without_command=True)
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="Training config (TOML), e.g. finetune/configs/rerank_small.toml.")
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
    from finetune.lora import load_config, train_lora

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
              help="Store with the catalog's context cards (the reranker reads them).")
@click.option("--movielens", type=click.Path(path_type=Path), default=_default_movielens)
@click.option("-n", "n", type=click.IntRange(min=1), default=600, show_default=True, help="Synthetic requests.")
@click.option("--negatives", type=click.IntRange(min=1), default=3, show_default=True, help="Hard negatives per request.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("runs/finetune/rerank_train.jsonl"), show_default=True)
@click.pass_context
def finetune_data(ctx, store_dir, movielens, n, negatives, seed, out):
    """Synthetic requests from catalog facts (never the benchmark's) -> pointwise reranker rows."""
    from agent.rerank import LlmReranker
    from agent.store import Store
    from finetune.request_data import build_request_examples, write_examples
    from finetune.rerank_data import build_rerank_rows

    examples = build_request_examples(movielens, n, seed=seed)
    write_examples(examples, out.with_name(out.stem + ".requests.jsonl"))
    ids = sorted({e["positive"] for e in examples} | {i for e in examples for i in e["negatives"][:negatives]})
    cards = {i: r["document"] for i, r in Store(store_dir).get(ids).items()}
    rows = build_rerank_rows(examples, LlmReranker(_settings(ctx), mode="pointwise"), cards, negatives, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    click.echo(f"{len(examples)} requests -> {len(rows)} rows in {out}", err=True)


@finetune.command("merge")
@click.option("--adapter", type=click.Path(path_type=Path), required=True, help="Adapter folder (OUTPUT/adapter).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Merged model folder to write.")
@click.option("--base", type=click.Path(path_type=Path), default=None, help="Base model (default: recorded in the adapter).")
def finetune_merge(adapter, out, base):
    """Merge an adapter into its base and save a plain model folder (safetensors + tokenizer)."""
    from finetune.lora import merge_adapter

    click.echo(str(merge_adapter(base, adapter, out)))
