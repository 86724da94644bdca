"""``recsage bench rerank``: reranker latency on real requests, against a naive run of the same model."""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from agent.cli.main import _settings, bench
from eval.requests import DEFAULT_REQUESTS
from agent.cli.retrieval import _movielens_option, _store_option
from agent.core.errors import InputError



def _timed(fn, *args) -> tuple[list[float], float]:
    start = time.perf_counter()
    scores = fn(*args)
    return scores, time.perf_counter() - start


@bench.command("rerank")
@_store_option
@_movielens_option
@click.option("--requests", "requests_file", type=click.Path(path_type=Path), default=DEFAULT_REQUESTS,
              show_default=True, help="Request benchmark whose texts are reranked.")
@click.option("-n", "n", type=click.IntRange(min=1), default=20, show_default=True, help="Requests to time.")
@click.pass_context
def bench_rerank(ctx, store_dir, movielens, requests_file, n):
    """Seconds to rerank the hybrid search's top candidates per request: the product path (shared-prefix
    cache, candidates packed into rows, yes/no logits only, bf16 weights where native) against a
    naive run of the same weights (fp32, every candidate's full prompt, full-vocabulary logits).
    Same requests, same candidates, same run."""
    from rich.table import Table

    from agent.ingest.catalog import load_movielens
    from agent.core.console import table_console
    from agent.rerank.reranker import load_reranker
    from agent.retrieval.text_search import HybridTextSearch
    from agent.ingest.store import Store
    from eval.requests import load_requests

    if movielens is None:
        raise InputError("no MovieLens folder: pass --movielens DIR or set RECSAGE_DATA")
    settings = _settings(ctx)
    store = Store(store_dir)
    searcher = HybridTextSearch(store, settings, load_movielens(movielens).items)
    texts = [r.text for r in load_requests(requests_file)][:n]
    fast = load_reranker(settings)
    naive = load_reranker(settings, dtype="fp32")  # the same weights in fp32
    candidates = []
    for text in texts:
        ids = [i for i, _ in searcher.search(text, settings.rerank_depth)]
        docs = store.get(ids)
        candidates.append([docs[i]["document"] for i in ids if i in docs])
    fast.pointwise_scores(texts[0], candidates[0])  # warm-up: first calls allocate and pick kernels
    rows = {"recsage": [], "naive": []}
    gaps = []
    for text, cards in zip(texts, candidates):
        got, seconds = _timed(fast.pointwise_scores, text, cards)
        rows["recsage"].append(seconds)
        base, seconds = _timed(naive.pointwise_scores_naive, text, cards)
        rows["naive"].append(seconds)
        # rank agreement, not equality: bf16 weights move scores slightly
        gaps.append(float(np.corrcoef(got, base)[0, 1]) if len(cards) > 1 else 1.0)
    table = Table("variant", "requests", "candidates", "p50 s", "p95 s", "speed-up (p50)",
                  title=f"rerank latency, {settings.threads} threads")
    naive_p50 = float(np.percentile(rows["naive"], 50))
    for name, label in (("naive", "naive: fp32, full prompts, full logits"),
                        ("recsage", "recsage: cached prefix, packed, yes/no logits, bf16")):
        p50, p95 = np.percentile(rows[name], [50, 95])
        table.add_row(label, str(len(texts)), str(settings.rerank_depth), f"{p50:.3f}", f"{p95:.3f}",
                      f"{naive_p50 / p50:.2f}x")
    table_console().print(table)
    click.echo(f"score correlation recsage vs naive: min {min(gaps):.4f}, mean {np.mean(gaps):.4f}")
