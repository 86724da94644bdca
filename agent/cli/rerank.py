"""``recsage bench rerank``: reranker latency on real requests, against a naive run of the same model."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import (
    bench,
    output_options,
    project,
    project_options,
    report,
    settings,
)
from eval.requests import DEFAULT_REQUESTS


@bench.command("rerank")
@project_options()
@click.option("--requests", "requests_file", type=click.Path(path_type=Path), default=DEFAULT_REQUESTS,
              show_default=True, help="Request benchmark whose texts are reranked.")
@click.option("-n", "n", type=click.IntRange(min=1), default=20, show_default=True, help="Requests to time.")
@output_options
@click.pass_context
def bench_rerank(ctx, requests_file, n, as_json, out_file):
    """Seconds to rerank the hybrid search's top candidates per request: the product path (shared-prefix
    cache, candidates packed into rows, yes/no logits only, bf16 weights where native) against a
    naive run of the same weights (fp32, every candidate's full prompt, full-vocabulary logits).
    Same requests, same candidates, same run."""
    from eval.bench.rerank import bench_rerank as run

    result = run(project(ctx), settings(ctx), requests_file, n)
    if not report(result, as_json, out_file):
        return
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("variant", "requests", "candidates", "p50 s", "p95 s", "speed-up (p50)",
                  title=f"rerank latency, {result['threads']} threads")
    for v in result["variants"].values():
        table.add_row(v["label"], str(result["requests"]), str(result["candidates"]), f"{v['p50_s']:.3f}",
                      f"{v['p95_s']:.3f}", f"{v['speedup_p50']:.2f}x")
    table_console().print(table)
    c = result["correlation"]
    click.echo(f"score correlation recsage vs naive: min {c['min']:.4f}, mean {c['mean']:.4f}")
