"""``recsage train-image-encoder`` (a small image tower aligned to the card space, for catalogs
without CLIP weights) and ``recsage eval-image-encoder`` (held-out photo queries: OCR alone
against OCR fused with the encoder's image vectors)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import (
    cli,
    output_options,
    project,
    project_options,
    report,
    settings,
)


def _run_dir(ctx, run_dir: Path | None) -> Path:
    return Path(run_dir) if run_dir is not None else project(ctx).store.artifacts_dir / "image_encoder"


def _recipe(recipe_file: Path | None, **overrides):
    from finetune.image_encoder.config import ImageEncoderConfig

    if recipe_file is None:
        return ImageEncoderConfig.from_mapping({k: v for k, v in overrides.items() if v is not None},
                                               source="the command line")
    return ImageEncoderConfig.from_toml(recipe_file, **overrides)


@cli.command("train-image-encoder")
@project_options()
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="Run folder: decoded-image cache, checkpoints, encoder/, report.json "
                   "(default: <artifacts>/image_encoder).")
@click.option("--recipe", "recipe_file", type=click.Path(path_type=Path), default=None,
              help="TOML file of training settings (keys: `recsage train-image-encoder --recipe-help`).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Optimizer steps of a complete run.")
@click.option("--seed", type=int, default=None, help="Seed of the held-out split, batches and initialisation.")
@click.option("--max-minutes", type=float, default=0.0, show_default=True,
              help="Stop after this long with a checkpoint (0: run to the end); rerun to resume.")
@click.option("--fresh", is_flag=True, help="Drop the run folder's checkpoint and encoder and start over.")
@click.option("--recipe-help", is_flag=True, help="List the training settings and exit.")
@output_options
@click.pass_context
def train_image_encoder_cmd(ctx, run_dir, recipe_file, steps, seed, max_minutes, fresh, recipe_help, as_json, out_file):
    """Train a small open_clip image tower on the catalog's images against their frozen card vectors
    (InfoNCE), hold out items by id, and report image->card Recall@10 and genre AUC on them."""
    from finetune.image_encoder.config import ImageEncoderConfig
    from finetune.image_encoder.pipeline import train_image_encoder

    if recipe_help:
        click.echo(ImageEncoderConfig.help())
        return
    config = _recipe(recipe_file, steps=steps, seed=seed, threads=settings(ctx).threads)
    summary = train_image_encoder(project(ctx), settings(ctx), config, _run_dir(ctx, run_dir),
                                  max_minutes=max_minutes, fresh=fresh, progress=not as_json)
    if not report(summary, as_json, out_file):
        return
    training = summary["training"]
    if not training["complete"]:
        click.echo(f"stopped at step {training['steps']}/{config.steps} (--max-minutes); rerun to resume", err=True)
        return
    held = summary["heldout"]
    click.echo(f"encoder: {summary['encoder']}\nheld-out items {held['heldout_items']}: image->card Recall@10 "
               f"{held['retrieval']['recall@10']:.3f} (chance {held['retrieval']['chance@10']:.3f})", err=True)
    for name, row in held["labels"].items():
        click.echo(f"  {config.facet} AUC, {name}: macro {row['macro_auc']}, micro {row['micro_auc']}", err=True)


@cli.command("eval-image-encoder")
@project_options()
@click.option("--run-dir", type=click.Path(path_type=Path), default=None,
              help="The run folder train-image-encoder wrote (default: <artifacts>/image_encoder).")
@click.option("--queries", type=click.IntRange(min=1), default=300, show_default=True,
              help="Held-out images used as photo queries.")
@click.option("--weight", "weights", type=float, multiple=True, default=(0.5, 1.0), show_default=True,
              help="Weights of the image scores in the fusion (repeatable).")
@output_options
@click.pass_context
def eval_image_encoder_cmd(ctx, run_dir, queries, weights, as_json, out_file):
    """Held-out photo queries (each held-out image, re-photographed: cropped, tilted, recompressed):
    the own item's rank and the facet overlap of the top 10, OCR only against OCR + image vectors."""
    from finetune.image_encoder.photo_queries import compare_photo_queries

    result = compare_photo_queries(project(ctx), settings(ctx), _run_dir(ctx, run_dir), queries=queries,
                                   weights=tuple(weights), progress=not as_json)
    if not report(result, as_json, out_file):
        return
    for row in result["systems"]:
        click.echo(f"{row['system']:<40} R@1 {row['recall@1']:.3f}  R@10 {row['recall@10']:.3f}  "
                   f"top-10 {result['facet']} overlap {row['facet_overlap@10']:.3f}", err=True)
