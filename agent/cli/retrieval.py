"""Retrieval commands: ``train-retriever``, ``eval``, ``bench retrieve`` (``recommend`` lives in agent.cli.recommend)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from agent.cli.main import _emit_json, _settings, bench, cli
from agent.core.config import default_data_dir
from agent.core.errors import InputError


def _default_movielens() -> Path | None:
    data = default_data_dir()
    return data / "ml-latest-small" if data else None


def _movielens_option(fn):
    return click.option("--movielens", type=click.Path(path_type=Path), default=_default_movielens,
                        show_default="RECSAGE_DATA/ml-latest-small",
                        help="MovieLens folder whose ratings.csv defines users and the protocol split.")(fn)


def _store_option(fn):
    return click.option("--store", "store_dir", type=click.Path(path_type=Path), required=True,
                        help="Embedded Chroma folder made by `recsage ingest` (retriever models live beside it).")(fn)


def _retriever(ctx, store_dir, movielens):
    from agent.retrieval.retriever import open_retriever

    if movielens is None:
        raise InputError("no MovieLens folder: pass --movielens DIR or set RECSAGE_DATA")
    if not (Path(store_dir) / "chroma.sqlite3").exists():
        raise InputError(f"no store at {store_dir}: run `recsage ingest --movielens DIR --store {store_dir}` first")
    return open_retriever(store_dir, movielens, _settings(ctx))


@cli.command("train-retriever")
@_store_option
@_movielens_option
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-minutes", type=float, default=0.0, show_default=True,
              help="Stop SASRec training after this long (0: early stopping only). Resumes from its checkpoint.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def train_retriever_cmd(ctx, store_dir, movielens, seed, max_minutes, as_json):
    """Train EASE + SASRec on the training split, store SASRec item vectors in Chroma, pick hybrid weights on validation."""
    from finetune.retriever.hybrid import train_retriever

    _retriever(ctx, store_dir, movielens)  # validates paths before minutes of training
    summary = train_retriever(store_dir, movielens, _settings(ctx), seed=seed, max_minutes=max_minutes)
    if as_json:
        _emit_json(summary)
    else:
        click.echo(f"hybrid weights {summary['hybrid']['weights']} "
                   f"(validation NDCG@10 {summary['hybrid']['val']['NDCG@10']:.4f}); "
                   f"{summary['timings_seconds']['train_retriever_total']:.0f} s", err=True)


@cli.command("eval")
@_store_option
@_movielens_option
@click.option("--system", "systems", multiple=True,
              help="popularity, content, ease, sasrec or hybrid (default hybrid); with --requests: bm25 or "
                   "content (default both). Repeat for several rows.")
@click.option("--split", "split_name", type=click.Choice(["val", "test"]), default="test", show_default=True)
@click.option("--users", type=int, default=None, help="Seeded sample of N users (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the user sample.")
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Write metrics, settings, protocol, timings here.")
@click.option("--run", "run_file", type=click.Path(path_type=Path), help="Write the top-50 run (ranx JSON) here (one system).")
@click.option("--compare", "compare_file", type=click.Path(path_type=Path), help="Paired test of NDCG@10 against this run file.")
@click.option("--requests", "requests_file", type=click.Path(path_type=Path), default=None,
              help="Evaluate request-driven ranking on this JSONL benchmark (eval/data/requests.jsonl) instead.")
@click.option("--candidate-order", type=click.Choice(["retriever", "shuffled", "reversed"]), default="retriever",
              show_default=True, help="System rerank: the order the LLM sees the hybrid's candidates in.")
@click.option("--rerank-alpha", "alphas", type=click.FloatRange(0, 1), multiple=True,
              help="System rerank: one row per LLM weight (default: the rerank_alpha setting); the LLM runs "
                   "once per user for all of them.")
@click.pass_context
def eval_cmd(ctx, store_dir, movielens, systems, split_name, users, seed, json_file, run_file, compare_file,
             requests_file, candidate_order, alphas):
    """Rank all items for each user (history masked) on the published leave-one-out protocol,
    or, with --requests, rank the catalog for natural-language requests (P@10, NDCG@10)."""
    from agent.retrieval.retriever import SYSTEMS
    from eval.harness import (
        compare_with_run,
        print_table,
        run_system,
        sample_users,
        summary,
    )
    from eval.run_io import write_run

    if requests_file is not None:
        _eval_requests(ctx, store_dir, movielens, systems or REQUEST_SYSTEMS, split_name, requests_file, json_file)
        return
    systems = systems or ("hybrid",)
    unknown = [s for s in systems if s not in (*SYSTEMS, "rerank")]
    if unknown:
        raise InputError(f"unknown system(s) {unknown}; choose from: {', '.join(SYSTEMS)}, rerank")
    if run_file and len(systems) > 1:
        raise InputError("--run writes one system's run: pass a single --system")
    if compare_file and not Path(compare_file).exists():
        raise InputError(f"--compare file not found: {compare_file}")
    if users is not None and users <= 0:
        raise InputError(f"--users must be a positive integer, got {users}")
    retriever = _retriever(ctx, store_dir, movielens)
    if "rerank" in systems:
        retriever = _reranking_retriever(ctx, retriever, candidate_order, seed)
    split = retriever.split
    chosen = sample_users(split.n_users, users, seed)
    click.echo(f"protocol: {split.stats()} ({split_name}, {len(chosen)} users)", err=True)
    rows = []
    runs = [(s, a) for s in systems for a in ((alphas or (retriever.alpha,)) if s == "rerank" else (None,))]
    if run_file and len(runs) > 1:
        raise InputError("--run writes one system's run: pass a single --system and at most one --rerank-alpha")
    for system, alpha in runs:
        if system == "rerank":
            retriever.alpha = alpha
        result = run_system(retriever, system, split_name, chosen)
        row = summary(result, split, {"users_seed": seed, "movielens": str(movielens), "store": str(store_dir)})
        if system == "rerank":
            row["rerank"] = retriever.stats()
            row["system"] = f"rerank (alpha {alpha})"
        if compare_file:
            row["compare"] = compare_with_run(result, split, compare_file)
        rows.append(row)
        if run_file:
            write_run(run_file, result.run)
    print_table(rows)
    for row in rows:
        if "rerank" in row:
            r = row["rerank"]
            click.echo(f"rerank: {r['depth']} candidates in {r['candidate_order']} order, alpha {r['alpha']}, "
                       f"out-of-candidate rate {r['out_of_candidate_rate']:.3f}, reranker p50 {r['rerank_p50_s']:.3f} s "
                       f"p95 {r['rerank_p95_s']:.3f} s per user")
        if "compare" in row:
            c = row["compare"]
            verdict = "significant" if c["significant"] else "not significant"
            click.echo(f"{row['system']} vs {c['other_run']}: NDCG@10 {c['ndcg@10_diff']:+.4f} "
                       f"(95% CI {c['ci95'][0]:+.4f}..{c['ci95'][1]:+.4f}, p={c['p_value']:.3f}, {verdict})")
    if json_file:
        Path(json_file).write_text(json.dumps(rows[0] if len(rows) == 1 else rows, indent=1))


def _reranking_retriever(ctx, retriever, order: str, seed: int):
    """The hybrid retriever with the configured LLM reranker over its top candidates (system rerank)."""
    from agent.rerank.reranker import load_reranker
    from eval.rerank_seq import RerankingRetriever, catalog_text

    settings = _settings(ctx)
    cards, titles = catalog_text(retriever)
    return RerankingRetriever(retriever, load_reranker(settings), cards, titles, depth=settings.rerank_depth, alpha=settings.rerank_alpha, order=order, seed=seed)


REQUEST_SYSTEMS = ("bm25", "content", "hybrid", "rerank-zeroshot", "rerank")
"""rerank: the hybrid's top candidates reranked by the LLM with the configured adapter (the shipped
LoRA by default); rerank-zeroshot: the same without an adapter. Depth and alpha from the settings."""


def _request_ranker(ctx, system: str, store_dir, movielens, depth: int = 100):
    """text -> ranked item ids. bm25: titles, genres and tags; content: MiniLM query over the Chroma
    cards; hybrid: both, fused (agent.retrieval.text_search.HybridTextSearch); rerank*: hybrid + LLM reranker."""
    from agent.ingest.catalog import load_movielens
    from agent.ingest.store import Store

    if system == "bm25":
        from agent.retrieval.bm25 import bm25_ranker

        return bm25_ranker(load_movielens(movielens).items, k=depth)
    if system == "content":
        from agent.ingest.pipeline import build_text_embedder

        store, embedder = Store(store_dir), build_text_embedder(_settings(ctx))
        return lambda text: [hit.id for hit in store.query(embedder.embed([text])[0], depth)]
    from agent.retrieval.text_search import HybridTextSearch

    store = Store(store_dir)
    searcher = HybridTextSearch(store, _settings(ctx), load_movielens(movielens).items)
    if system == "hybrid":
        return lambda text: [item_id for item_id, _ in searcher.search(text, depth)]
    from agent.rerank.reranker import load_reranker, rerank_ranking

    settings = _settings(ctx)
    if system == "rerank-zeroshot":
        settings = settings.model_copy(update={"rerank_adapter": None})
    reranker = load_reranker(settings)

    def rerank(text: str) -> list[str]:
        ranked = searcher.search(text, depth)
        cards = {i: r["document"] for i, r in store.get([i for i, _ in ranked[: settings.rerank_depth]]).items()}
        return rerank_ranking(reranker, text, ranked, cards, k=settings.rerank_depth, alpha=settings.rerank_alpha)

    return rerank


def _eval_requests(ctx, store_dir, movielens, systems, split_name, requests_file, json_file) -> None:
    from rich.table import Table

    from agent.core.console import table_console
    from eval.requests import (
        by_split,
        compare,
        evaluate_requests,
        load_relevance_catalog,
        load_requests,
    )

    unknown = [s for s in systems if s not in REQUEST_SYSTEMS]
    if unknown:
        raise InputError(f"unknown request system(s) {unknown}; choose from: {', '.join(REQUEST_SYSTEMS)}")
    if movielens is None:
        raise InputError("no MovieLens folder: pass --movielens DIR or set RECSAGE_DATA")
    requests = by_split(load_requests(requests_file), split_name)
    judge = load_relevance_catalog(movielens)
    results = {s: evaluate_requests(requests, _request_ranker(ctx, s, store_dir, movielens), judge, k=10,
                                    progress=True) for s in systems}
    table = Table("system", "split", "requests", "P@10 (95% CI)", "NDCG@10 (95% CI)", "p50 s",
                  f"NDCG@10 vs {systems[0]} (p)", title="request-driven ranking")
    for name, r in results.items():
        p, n = r["metrics"]["P@10"], r["metrics"]["NDCG@10"]
        paired = "" if name == systems[0] else (
            lambda c: f"{c.mean_diff:+.3f} ({c.p_value:.3f})")(compare(r, results[systems[0]]))
        table.add_row(name, split_name, str(r["n_requests"]), f"{p['mean']:.3f} ({p['ci_low']:.3f}-{p['ci_high']:.3f})",
                      f"{n['mean']:.3f} ({n['ci_low']:.3f}-{n['ci_high']:.3f})", f"{r['latency_s']['p50']:.3f}", paired)
    table_console().print(table)
    if json_file:
        Path(json_file).write_text(json.dumps(results, indent=1, default=str))


@bench.command("retrieve")
@_store_option
@_movielens_option
@click.option("--users", type=int, default=100, show_default=True)
@click.pass_context
def bench_retrieve(ctx, store_dir, movielens, users):
    """Per-user latency, history -> top 50 candidates (scores + Chroma fetch), per system."""
    import numpy as np
    from rich.table import Table

    from agent.core.console import table_console
    from eval.harness import sample_users

    retriever = _retriever(ctx, store_dir, movielens)
    chosen = sample_users(retriever.split.n_users, users)
    table = Table("system", "users", "p50 ms", "p95 ms", "max ms", title="retrieval latency, history -> top 50")
    for system in ("popularity", "content", "ease", "sasrec", "hybrid"):
        hist = [retriever.user_history(retriever.split.user_ids[u]) for u in chosen]
        retriever.recommend(hist[0], 50, system=system)  # warm-up: loads models and vectors once
        times = []
        for h in hist:
            t = time.perf_counter()
            retriever.recommend(h, 50, system=system)
            times.append(1000 * (time.perf_counter() - t))
        p50, p95 = np.percentile(times, [50, 95])
        table.add_row(system, str(len(times)), f"{p50:.1f}", f"{p95:.1f}", f"{max(times):.1f}")
    table_console().print(table)
