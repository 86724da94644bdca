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

import numpy as np

GRID = {"hybrid": (0.0, 0.5, 1.0), "context": (0.0, 0.5, 1.0), "comention": (0.0, 0.5, 1.0, 2.0),
        "recommended": (0.0, 0.5, 1.0, 2.0), "text": (0.0, 0.1), "popularity": (0.0, 0.25, 0.5)}


def case_parts(recommender, catalog, case, prior):
    """The case's conversation read by the rules, then :func:`request_retrieval`."""
    from agent.chat.request import read_request
    from eval.conversations.retrieval_only import request_retrieval

    return request_retrieval(recommender, read_request(case.turn.messages(), catalog), case, prior)


def main(argv=None) -> None:
    from eval.conversations.prior import build_prior
    from eval.conversations.retrieval_only import arguments, open_bench, recall_at
    from eval.conversations.run import build_cases

    ap = arguments(argparse.ArgumentParser())
    ap.add_argument("--prior", type=int, default=350, help="training dialogues counted into the prior")
    args = ap.parse_args(argv)
    bench = open_bench(args)
    catalog, recommender, dialogues, mapper = bench.catalog, bench.recommender, bench.dialogues, bench.mapper
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
