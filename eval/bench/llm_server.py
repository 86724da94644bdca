"""``recsage bench rerank-server``: the reranker through an OpenAI-compatible LLM server (vLLM) against
the local reranker, in one run on the same requests and candidates: the request benchmark's P@10 and
NDCG@10 (bootstrap CIs, paired test), how well the scores agree, labels the server did not return,
and seconds per request."""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np

from agent.core.config import LlmServer, Settings
from agent.core.project import Project
from agent.core.timing import percentiles

SYSTEMS = {"local": "local (product dtype)", "local-fp32": "local fp32 (merged adapter)",
           "server": "LLM server"}
REFERENCE = "local-fp32"
"""The server's scores are compared with this system's: the same precision as a float32 server."""


class Recorder:
    """A reranker that keeps every candidate's score, the seconds per call and the server's missing
    labels, for :func:`rerank_server_bench` (it reranks exactly as the wrapped one does)."""

    def __init__(self, reranker):
        self.reranker = reranker
        self.scores: dict[str, dict[Hashable, float]] = {}
        self.seconds: list[float] = []
        self.missing_labels = 0

    def rerank(self, request_text: str, candidates, history_titles: Sequence[str] = ()):
        start = time.perf_counter()
        ranked = self.reranker.rerank(request_text, candidates, history_titles)
        self.seconds.append(time.perf_counter() - start)
        self.scores[request_text] = dict(ranked)
        self.missing_labels += int(self.reranker.last_stats.get("missing_labels", 0))
        return ranked


def server_settings(settings: Settings, url: str, role: str = "llm") -> Settings:
    """``settings`` with ``role`` on the server at ``url`` (the base model served as the role's name)."""
    servers = {**settings.llm_servers, role: LlmServer(url=url, model=role)}
    return settings.with_overrides(llm_backend="openai", llm_servers=servers)


def agreement(a: dict[str, dict], b: dict[str, dict]) -> dict:
    """Pearson correlation of two systems' scores: per request (min, mean) and over every pair
    pooled, and the largest absolute difference (same requests and candidates in both)."""
    per, xs, ys = [], [], []
    for text, scores in a.items():
        ids = list(scores)
        x, y = np.array([scores[i] for i in ids]), np.array([b[text][i] for i in ids])
        xs.extend(x)
        ys.extend(y)
        if len(ids) > 1 and x.std() > 0 and y.std() > 0:
            per.append(float(np.corrcoef(x, y)[0, 1]))
    xs, ys = np.array(xs), np.array(ys)
    return {"min": min(per, default=float("nan")), "mean": float(np.mean(per)) if per else float("nan"),
            "pooled": float(np.corrcoef(xs, ys)[0, 1]) if len(xs) > 1 else float("nan"),
            "max_abs_diff": float(np.abs(xs - ys).max()) if len(xs) else float("nan")}


def rerank_server_bench(project: Project, settings: Settings, url: str, requests_file: Path,
                        split: str | None, n: int | None, judge) -> dict:
    """``{"requests", "split", "server", "systems": {name: {"label", "metrics", "p50_s", "p95_s"}},
    "paired": {name: {"mean_diff", "ci_low", "ci_high", "p_value"}} (NDCG@10, system - local),
    "agreement": {"min", "mean", "pooled", "max_abs_diff"} (server vs local fp32), "missing_labels"}``."""
    from agent.ingest.catalog import load_source
    from agent.rerank.reranker import load_reranker, rerank_ranking
    from agent.retrieval.retriever import open_project_store
    from agent.retrieval.text_search import HybridTextSearch
    from eval.requests import by_split, compare, evaluate_requests, load_requests

    requests = by_split(load_requests(requests_file), split)[:n]
    store = open_project_store(project)
    searcher = HybridTextSearch(store, settings, load_source(project.catalog, settings.catalog_max_field_chars).items)
    rerankers = {"local": Recorder(load_reranker(settings)), "local-fp32": Recorder(load_reranker(settings, "fp32")),
                 "server": Recorder(load_reranker(server_settings(settings, url)))}

    def ranker(recorder: Recorder):
        def rank(text: str) -> list[str]:
            ranked = searcher.search(text, 100)
            cards = {i: r["document"] for i, r in store.get([i for i, _ in ranked[: settings.rerank_depth]]).items()}
            return rerank_ranking(recorder, text, ranked, cards, k=settings.rerank_depth, alpha=settings.rerank_alpha)
        return rank

    results = {name: evaluate_requests(requests, ranker(rec), judge, k=10) for name, rec in rerankers.items()}
    systems = {}
    for name, rec in rerankers.items():
        p = percentiles(rec.seconds)
        systems[name] = {"label": SYSTEMS[name], "metrics": results[name]["metrics"], "p50_s": p["p50"],
                         "p95_s": p["p95"]}
    paired = {name: vars(compare(results[name], results["local"])) for name in rerankers if name != "local"}
    return {"requests": len(requests), "split": split, "server": url, "systems": systems, "paired": paired,
            "agreement": agreement(rerankers["server"].scores, rerankers[REFERENCE].scores),
            "missing_labels": rerankers["server"].missing_labels}
