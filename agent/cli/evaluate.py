"""``recsage eval`` (the sequential leave-one-out protocol), ``recsage eval conversations`` (ReDial
dialogues) and ``recsage eval-requests`` (ranking the catalog for natural-language requests)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import (
    benchmark_movielens,
    chat_catalog,
    cli,
    open_retriever,
    output_options,
    project,
    project_options,
    report,
    settings,
)
from agent.cli.ray_options import ray_engine, ray_options
from agent.core.errors import InputError
from eval.requests import DEFAULT_REQUESTS

REQUEST_SYSTEMS = ("bm25", "content", "hybrid", "rerank-zeroshot", "rerank", "recommend", "recommend-user")
"""rerank: the hybrid's top candidates reranked by the LLM with the configured adapter (the shipped
LoRA by default); rerank-zeroshot: the same without an adapter. Depth and alpha from the settings.
recommend: the product path, the call `recommend --query` makes (the query read as the chat reads it,
then the Recommender's retrieval and rerank); recommend-user: the same with a user of the protocol
split per request (`recommend --user U --query`)."""


@cli.group("eval", invoke_without_command=True)
@project_options()
@click.option("--system", "systems", multiple=True,
              help="popularity, content, ease, sasrec, hybrid or rerank (default hybrid). Repeat for several rows.")
@click.option("--split", "split_name", type=click.Choice(["val", "test"]), default="test", show_default=True)
@click.option("--users", type=int, default=None, help="Seeded sample of N users (default: all).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the user sample.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics, settings, protocol, timings as JSON to stdout.")
@click.option("--out", "out_file", type=click.Path(path_type=Path),
              help="Write metrics, settings, protocol, timings here (JSON).")
@click.option("--run", "run_file", type=click.Path(path_type=Path), help="Write the top-50 run (ranx JSON) here (one system).")
@click.option("--compare", "compare_file", type=click.Path(path_type=Path), help="Paired test of NDCG@10 against this run file.")
@click.option("--candidate-order", type=click.Choice(["retriever", "shuffled", "reversed"]), default="retriever",
              show_default=True, help="System rerank: the order the LLM sees the hybrid's candidates in.")
@click.option("--rerank-alpha", "alphas", type=click.FloatRange(0, 1), multiple=True,
              help="System rerank: one row per LLM weight (default: the rerank_alpha setting); the LLM runs "
                   "once per user for all of them.")
@ray_options("the users' ranking", "ranking actors")
@click.pass_context
def eval_cmd(ctx, systems, split_name, users, seed, as_json, out_file, run_file, compare_file,
             candidate_order, alphas, engine, ray_address, ray_actors, ray_actor_cpus):
    """Rank all items for each user (history masked) on the published leave-one-out protocol.
    `recsage eval conversations` measures on ReDial dialogues instead."""
    if ctx.invoked_subcommand is not None:  # a subcommand runs alone; this group's options are its own
        return
    from agent.retrieval.retriever import SYSTEMS
    from eval.harness import compare_with_run, sample_users, summary
    from eval.run_io import write_run

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
    options = ray_engine(engine, ray_address, ray_actors, ray_actor_cpus)
    if options is not None:
        from eval.ray_eval import check_ray_eval

        check_ray_eval(candidate_order)
    retriever = open_retriever(ctx, report_data=True)
    split = retriever.split
    chosen = sample_users(split.n_users, users, seed)
    click.echo(f"protocol: {split.stats()} ({split_name}, {len(chosen)} users)", err=True)
    runs = [(s, a) for s in systems
            for a in ((alphas or (settings(ctx).rerank_alpha,)) if s == "rerank" else (None,))]
    if run_file and len(runs) > 1:
        raise InputError("--run writes one system's run: pass a single --system and at most one --rerank-alpha")
    scorer = _ray_scorer if options is not None else _local_scorer
    rows = []
    for (system, alpha), result, rerank in scorer(ctx, retriever, runs, split_name, chosen, candidate_order, seed,
                                                   options):
        row = summary(result, split, {"users_seed": seed, **project_record(project(ctx))})
        if system == "rerank":
            row["rerank"] = rerank(alpha)
            row["system"] = f"rerank (alpha {alpha})"
        if compare_file:
            row["compare"] = compare_with_run(result, split, compare_file)
        rows.append(row)
        if run_file:
            write_run(run_file, result.run)
    if report(rows[0] if len(rows) == 1 else rows, as_json, out_file):
        print_eval_rows(rows)


def _local_scorer(ctx, retriever, runs, split_name, chosen, candidate_order, seed, _options):
    """``((system, alpha), result, rerank stats of an alpha)`` per run, in this process, one run
    after the other (the reranker caches its scores per user, so later alphas reuse them)."""
    from eval.harness import run_system
    from eval.rerank_seq import reranking_retriever

    if any(system == "rerank" for system, _ in runs):
        retriever = reranking_retriever(retriever, settings(ctx), candidate_order, seed, words=project(ctx).words)
    for system, alpha in runs:
        if system == "rerank":
            retriever.alpha = alpha
        yield (system, alpha), run_system(retriever, system, split_name, chosen), lambda _alpha: retriever.stats()


def _ray_scorer(ctx, retriever, runs, split_name, chosen, candidate_order, seed, options):
    """The same triples as :func:`_local_scorer`, all runs scored in one pass of Ray actors."""
    from eval.ray_eval import eval_on_ray, rerank_stats

    config, notes = settings(ctx), []
    actor_kwargs = {"project": project(ctx), "settings": config, "candidate_order": candidate_order, "seed": seed}
    results, counts = eval_on_ray(retriever.split, runs, split_name, chosen, actor_kwargs, options, notes=notes)
    for note in notes:
        click.echo(note, err=True)
    for run, result in zip(runs, results, strict=True):
        yield run, result, lambda alpha: rerank_stats(counts, config, candidate_order, seed, alpha)


def project_record(resolved) -> dict:
    """Where an eval row's data came from, for its JSON."""
    return {"project": resolved.source, "catalog": str(resolved.catalog.path),
            "interactions": str(resolved.require_interactions().path),
            "store": str(resolved.store.path or resolved.store.url)}


def print_eval_rows(rows: list[dict]) -> None:
    """The metrics table, then one line per reranked row and per paired comparison."""
    from eval.harness import print_table

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


CONVERSATION_SYSTEMS = ("popularity", "bm25", "item-cosine", "chat")
"""chat: the dialogue through the /v1/chat/completions code path on the project's store and retriever."""


@eval_cmd.command("conversations")
@project_options()
@click.option("--dialogues", "dialogues_file", type=click.Path(path_type=Path), required=True,
              help="ReDial JSONL (e.g. RECSAGE_DATA/redial/valid_data.jsonl; data card in its README).")
@click.option("--system", "systems", multiple=True,
              help=f"{', '.join(CONVERSATION_SYSTEMS)} (default: all). Repeat for several rows.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N dialogues.")
@output_options
@click.pass_context
def eval_conversations_cmd(ctx, dialogues_file, systems, limit, as_json, out_file):
    """Rank the catalog at every ReDial recommender turn that names a new movie: Recall@1/10/50
    (95% bootstrap CIs) per system, paired differences against each baseline."""
    from eval.conversations.run import conversation_report

    systems = tuple(dict.fromkeys(systems or CONVERSATION_SYSTEMS))
    unknown = [s for s in systems if s not in CONVERSATION_SYSTEMS]
    if unknown:
        raise InputError(f"unknown conversation system(s) {unknown}; choose from: {', '.join(CONVERSATION_SYSTEMS)}")
    catalog = chat_catalog(ctx)
    chat = (lambda: conversation_chat(ctx, catalog)) if "chat" in systems else None  # after the file is read
    data = conversation_report(dialogues_file, limit, systems, catalog, chat)
    data["project"] = project(ctx).source
    if report(data, as_json, out_file):
        print_conversations(data)


def conversation_chat(ctx, catalog):
    """The chat agent as `recsage serve` builds it, without explanations (they do not change the
    ranking) and with tools that answer the evaluation's depth."""
    from agent.chat.agent import ChatAgent
    from agent.chat.tools import load_tools
    from agent.recommend import Recommender
    from eval.conversations.chat_system import ChatRanker, deep_tools
    from eval.conversations.scoring import KS

    config = settings(ctx).model_copy(update={"chat_explain": False})
    agent = ChatAgent(Recommender(project(ctx), config), config, catalog=catalog,
                      tools=deep_tools(load_tools(words=catalog.words), max(KS)))
    return ChatRanker(agent)


def print_conversations(data: dict) -> None:
    """Counts and mapping, the Recall table, then Recall@10 differences against each baseline."""
    from rich.table import Table

    from agent.core.console import table_console

    m = data["mapping"]
    for line in data["skipped_lines"]:
        click.echo(f"skipped {line}", err=True)
    click.echo(f"{data['dialogues']} dialogues, {data['turns']} recommender turns naming a new movie, "
               f"{data['cases']} with a target in the catalog ({data['targets']} targets); "
               f"{m['mentions_mapped']}/{m['mentions']} first namings map ({m['mentions_share']:.0%})")
    ks = [key for key in next(iter(data["systems"].values())) if key.startswith("Recall@")]
    table = Table("system", *(f"{k} (95% CI)" for k in ks), "p50 s/turn", title="ReDial recommender turns")
    for name, row in data["systems"].items():
        cells = [f"{row[k]['mean']:.3f} ({row[k]['ci_low']:.3f}-{row[k]['ci_high']:.3f})" for k in ks]
        table.add_row(name, *cells, f"{row['latency_s']['p50']:.3f}")
    console = table_console()
    console.print(table)
    for name, against in data["paired"].items():
        for base, diff in against.items():
            d = diff["Recall@10"]
            console.print(f"{name} - {base} Recall@10: {d['mean_diff']:+.3f} (95% CI {d['ci_low']:+.3f}.."
                          f"{d['ci_high']:+.3f}, p={d['p_value']:.3f})")
    if data.get("chat_tools"):
        console.print("chat tools: " + ", ".join(f"{n} {c}" for n, c in data["chat_tools"].items()))


@cli.command("eval-requests")
@project_options()
@click.option("--requests", "requests_file", type=click.Path(path_type=Path), default=DEFAULT_REQUESTS,
              show_default=True, help="The request benchmark (JSONL; data card eval/data/README.md).")
@click.option("--system", "systems", multiple=True,
              help=f"{', '.join(REQUEST_SYSTEMS)} (default: all). Repeat for several rows; the first is the "
                   "baseline of the paired test.")
@click.option("--split", "split_name", type=click.Choice(["val", "test"]), default="test", show_default=True)
@output_options
@click.pass_context
def eval_requests_cmd(ctx, requests_file, systems, split_name, as_json, out_file):
    """Rank the catalog for natural-language requests: P@10, NDCG@10 (bootstrap CIs), paired test."""
    from eval.requests import (
        by_split,
        evaluate_requests,
        load_relevance_catalog,
        load_requests,
    )

    systems = systems or REQUEST_SYSTEMS
    unknown = [s for s in systems if s not in REQUEST_SYSTEMS]
    if unknown:
        raise InputError(f"unknown request system(s) {unknown}; choose from: {', '.join(REQUEST_SYSTEMS)}")
    movielens = benchmark_movielens(project(ctx))  # the judge reads MovieLens tags and plots
    requests = by_split(load_requests(requests_file), split_name)
    judge = load_relevance_catalog(movielens)
    results = {s: evaluate_requests(requests, request_ranker(ctx, s, texts=[r.text for r in requests]), judge,
                                    k=10, progress=True) for s in systems}
    if report(results, as_json, out_file):
        print_request_results(results, systems, split_name)


def print_request_results(results: dict, systems, split_name: str) -> None:
    from rich.table import Table

    from agent.core.console import table_console
    from eval.requests import compare

    table = Table("system", "split", "requests", "P@10 (95% CI)", "NDCG@10 (95% CI)", "p50 s",
                  f"NDCG@10 vs {systems[0]} (p)", title="request-driven ranking")
    for name, r in results.items():
        p, n = r["metrics"]["P@10"], r["metrics"]["NDCG@10"]
        c = None if name == systems[0] else compare(r, results[systems[0]])
        paired = "" if c is None else f"{c.mean_diff:+.3f} ({c.p_value:.3f})"
        table.add_row(name, split_name, str(r["n_requests"]), f"{p['mean']:.3f} ({p['ci_low']:.3f}-{p['ci_high']:.3f})",
                      f"{n['mean']:.3f} ({n['ci_low']:.3f}-{n['ci_high']:.3f})", f"{r['latency_s']['p50']:.3f}", paired)
    table_console().print(table)


def request_ranker(ctx, system: str, depth: int = 100, texts: list[str] = ()):
    """text -> ranked item ids. bm25: titles, facets and text fields; content: MiniLM query over the
    Chroma cards; hybrid: both, fused (agent.retrieval.text_search.HybridTextSearch); rerank*: hybrid +
    LLM reranker; recommend*: the Recommender (``texts``: the requests, one sampled user each)."""
    from agent.ingest.catalog import load_source
    from agent.retrieval.retriever import open_project_store

    if system.startswith("recommend"):
        from agent.cli.recommend import open_recommender
        from eval.requests import recommend_ranker, request_users

        recommender = open_recommender(ctx)
        return recommend_ranker(recommender, request_users(texts, recommender) if system == "recommend-user" else None)
    config = settings(ctx)
    items = load_source(project(ctx).catalog, config.catalog_max_field_chars).items
    if system == "bm25":
        from agent.retrieval.bm25 import bm25_ranker

        return bm25_ranker(items, k=depth)
    store = open_project_store(project(ctx))
    if system == "content":
        from agent.ingest.pipeline import build_text_embedder

        embedder = build_text_embedder(config)
        return lambda text: [hit.id for hit in store.query(embedder.embed([text])[0], depth)]
    from agent.retrieval.text_search import HybridTextSearch

    searcher = HybridTextSearch(store, config, items)
    if system == "hybrid":
        return lambda text: [item_id for item_id, _ in searcher.search(text, depth)]
    from agent.rerank.reranker import load_reranker, rerank_ranking

    if system == "rerank-zeroshot":
        config = config.model_copy(update={"rerank_adapter": None})
    reranker = load_reranker(config, words=project(ctx).words)

    def rerank(text: str) -> list[str]:
        ranked = searcher.search(text, depth)
        cards = {i: r["document"] for i, r in store.get([i for i, _ in ranked[: config.rerank_depth]]).items()}
        return rerank_ranking(reranker, text, ranked, cards, k=config.rerank_depth, alpha=config.rerank_alpha)

    return rerank
