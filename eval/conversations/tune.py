"""Choose the request-fusion weights (agent.retrieval.request_fusion) on ReDial TRAIN dialogues.

The dialogue prior is counted on the first ``--prior`` training dialogues and the weights are
scored on the rest, so no case sees counts from its own dialogue. Each case's conversation is read
into a Request (agent.chat.request, rules, no LLM); its parts (collaborative from liked and from
every mentioned title, the prior's co-mentions and recommendations, text, popularity) are computed
once, then every weight combination of a small grid is scored by Recall@10 over the targets. No LLM,
no reranker: this chooses the retrieval only. Valid stays for the final measure.

    python -m eval.conversations.tune --movielens DIR --store STORE --dialogues train_data.jsonl --prior 350
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

GRID = {"hybrid": (0.0, 0.5, 1.0), "context": (0.0, 0.5, 1.0), "comention": (0.0, 0.5, 1.0, 2.0),
        "recommended": (0.0, 0.5, 1.0, 2.0), "text": (0.0, 0.1), "popularity": (0.0, 0.25, 0.5)}


def case_parts(recommender, catalog, case, prior):
    """The case's conversation read by the rules, then :func:`request_retrieval`."""
    from agent.chat.request import read_request

    return request_retrieval(recommender, read_request(case.turn.messages(), catalog), case, prior)


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
    from agent.retrieval.request_fusion import fuse

    titled = "hybrid" in parts or "context" in parts
    scores = fuse(parts, weights if titled else None).copy()
    scores[mask] = -np.inf
    top = set(np.argsort(-scores, kind="stable")[:k].tolist())
    return [int(index.get(t, -1) in top) for t in targets]


def main(argv=None) -> None:
    from agent.cli.base import project_chat_catalog
    from agent.core.config import load_settings
    from agent.core.project import movielens_project
    from agent.recommend import Recommender
    from eval.conversations.dialogues import load_dialogues
    from eval.conversations.mapping import TitleMapper
    from eval.conversations.prior import build_prior
    from eval.conversations.run import build_cases

    ap = argparse.ArgumentParser()
    ap.add_argument("--movielens", type=Path, required=True)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--dialogues", type=Path, required=True)
    ap.add_argument("--prior", type=int, default=350, help="training dialogues counted into the prior")
    args = ap.parse_args(argv)
    settings = load_settings()
    project = movielens_project(args.movielens, store=args.store)
    catalog = project_chat_catalog(project, settings)
    recommender = Recommender(project, settings)
    dialogues, _ = load_dialogues(args.dialogues)
    mapper = TitleMapper(catalog.items.values(), catalog.rating_counts())
    prior = build_prior(dialogues[:args.prior], mapper)
    cases, counts = build_cases(dialogues[args.prior:], mapper)
    index = recommender.retriever.split.item_index
    computed = [(case_parts(recommender, catalog, c, prior), c.targets) for c in cases]
    print(f"prior from {args.prior} dialogues; {counts['cases']} cases, {counts['targets']} targets")
    results = []
    for values in itertools.product(*GRID.values()):
        weights = dict(zip(GRID, values, strict=True))
        hits = [h for (parts, mask), targets in computed for h in recall_at(parts, mask, targets, index, weights)]
        results.append((float(np.mean(hits)), weights))
    for recall, weights in sorted(results, key=lambda r: -r[0])[:8]:
        print(f"R@10 {recall:.3f}  {weights}")


if __name__ == "__main__":
    main()
