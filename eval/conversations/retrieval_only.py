"""Retrieval alone on ReDial cases: a request's fusion parts (agent.retrieval.request_fusion) scored
by Recall@k, without the chat's tools or the reranker. What the weight tuning (tune) and the
LLM-reading comparison (understanding) share, including how both scripts open the store."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def request_retrieval(recommender, request, case, prior):
    """A request's fusion parts and the mask of what may not be recommended (named, excluded and
    liked titles, items outside the store)."""
    from agent.retrieval.request_fusion import request_parts, text_scores

    retriever = recommender.retriever
    liked, _ = retriever.history_from_ids(request.liked_ids)
    mentioned, _ = retriever.history_from_ids(request.mentioned)
    text = request.ask or request.need
    hits = recommender.searcher.search(text, 200) if text.strip() else None
    scores = None if hits is None else text_scores(hits, retriever.split.item_index, retriever.split.n_items)
    parts = request_parts(retriever, liked, scores, mentioned, prior, [*request.liked_ids, *request.mentioned])
    mask = np.zeros(retriever.split.n_items, dtype=bool)
    excluded, _ = retriever.history_from_ids([*case.named, *request.exclude])
    mask[excluded] = True
    mask[liked] = True
    mask |= ~retriever.stored
    return parts, mask


def recall_at(parts, mask, targets, index, weights, k=10) -> list[int]:
    """1/0 per target: in the top ``k`` of the fused parts (``weights`` only when titles carry the
    request, else the defaults), the mask excluded."""
    from agent.retrieval.request_fusion import fuse

    titled = "hybrid" in parts or "context" in parts
    scores = fuse(parts, weights if titled else None).copy()
    scores[mask] = -np.inf
    top = set(np.argsort(-scores, kind="stable")[:k].tolist())
    return [int(index.get(t, -1) in top) for t in targets]


@dataclass
class Bench:
    settings: object
    catalog: object
    recommender: object
    dialogues: list
    mapper: object


def arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    ap.add_argument("--movielens", type=Path, required=True)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--dialogues", type=Path, required=True)
    return ap


def open_bench(args) -> Bench:
    """The store's recommender and chat catalog, the dialogue file and its title mapper."""
    from agent.cli.base import project_chat_catalog
    from agent.core.config import load_settings
    from agent.core.project import movielens_project
    from agent.recommend import Recommender
    from eval.conversations.dialogues import load_dialogues
    from eval.conversations.mapping import TitleMapper

    settings = load_settings()
    project = movielens_project(args.movielens, store=args.store)
    catalog = project_chat_catalog(project, settings)
    dialogues, _ = load_dialogues(args.dialogues)
    return Bench(settings, catalog, Recommender(project, settings), dialogues,
                 TitleMapper(catalog.items.values(), catalog.rating_counts()))
