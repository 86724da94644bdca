"""``recsage bench rerank``: reranker latency on real requests, the product path against a naive run
of the same weights (fp32, every candidate's full prompt, full-vocabulary logits); same requests,
same candidates, same run."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.core.config import Settings
from agent.core.project import Project
from agent.core.timing import percentiles
from eval.bench import timed

VARIANTS = {"naive": "naive: fp32, full prompts, full logits",
            "recsage": "recsage: cached prefix, packed, yes/no logits, bf16"}


def bench_rerank(project: Project, settings: Settings, requests_file: Path, n: int) -> dict:
    """``{"requests", "candidates", "threads", "variants": {name: {"label", "p50_s", "p95_s", "speedup_p50"}},
    "correlation": {"min", "mean"}}``: seconds per request for each variant and how well the two
    variants' scores agree (rank agreement, not equality: bf16 weights move scores slightly)."""
    from agent.ingest.catalog import load_source
    from agent.rerank.reranker import load_reranker
    from agent.retrieval.retriever import open_project_store
    from agent.retrieval.text_search import HybridTextSearch
    from eval.requests import load_requests

    store = open_project_store(project)
    searcher = HybridTextSearch(store, settings, load_source(project.catalog, settings.catalog_max_field_chars).items)
    texts = [r.text for r in load_requests(requests_file)][:n]
    fast = load_reranker(settings)
    naive = load_reranker(settings, dtype="fp32")  # the same weights in fp32
    candidates = []
    for text in texts:
        ids = [i for i, _ in searcher.search(text, settings.rerank_depth)]
        docs = store.get(ids)
        candidates.append([docs[i]["document"] for i in ids if i in docs])
    fast.pointwise_scores(texts[0], candidates[0])  # warm-up: first calls allocate and pick kernels
    seconds: dict[str, list[float]] = {"recsage": [], "naive": []}
    gaps = []
    for text, cards in zip(texts, candidates):
        got, took = timed(fast.pointwise_scores, text, cards)
        seconds["recsage"].append(took)
        base, took = timed(naive.pointwise_scores_naive, text, cards)
        seconds["naive"].append(took)
        gaps.append(float(np.corrcoef(got, base)[0, 1]) if len(cards) > 1 else 1.0)
    naive_p50 = percentiles(seconds["naive"])["p50"]
    variants = {}
    for name, label in VARIANTS.items():
        p = percentiles(seconds[name])
        variants[name] = {"label": label, "p50_s": p["p50"], "p95_s": p["p95"], "speedup_p50": naive_p50 / p["p50"]}
    return {"requests": len(texts), "candidates": settings.rerank_depth, "threads": settings.threads,
            "variants": variants, "correlation": {"min": min(gaps), "mean": float(np.mean(gaps))}}
