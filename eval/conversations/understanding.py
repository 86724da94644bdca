"""Rules against rules + LLM reading of ReDial conversations (agent/chat/understand.py).

For the first ``--cases`` cases of a dialogue file (valid: every choice is made there): the rules'
Request, the LLM's constrained reading (timed), how often the LLM's liked titles agree with the
rules', and Recall@10 of the request-fusion retrieval (no dialogue prior, no reranker) from each
request, so the two readings are compared on the same retrieval.

    python -m eval.conversations.understanding --movielens DIR --store STORE \
        --dialogues valid_data.jsonl --cases 30 [--role llm_qwen05]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np


def request_recall(recommender, request, case, k: int = 10) -> list[int]:
    """1/0 per target: in the top ``k`` of the fused request parts (default weights, no dialogue
    prior), the named and excluded masked."""
    from eval.conversations.retrieval_only import recall_at, request_retrieval

    parts, mask = request_retrieval(recommender, request, case, None)
    return recall_at(parts, mask, case.targets, recommender.retriever.split.item_index, None, k)


def compare(cases, catalog, recommender, llm) -> dict:
    """Per case: liked agreement, seconds of the LLM reading, and both recalls."""
    from agent.chat.request import Request
    from agent.chat.understand import merge, read_with_llm, resolve_title
    from agent.core.progress import progress

    rows = []
    for case in progress(cases, "understanding"):
        messages = case.turn.messages()
        rules = Request.from_conversation(messages, catalog)
        start = time.perf_counter()
        reading = read_with_llm(llm, messages, catalog)
        seconds = time.perf_counter() - start
        llm_liked = {i for i in (resolve_title(t, catalog) for t in (reading or {}).get("liked", [])) if i}
        merged = merge(copy.deepcopy(rules), reading, catalog) if reading is not None else rules
        rows.append({"seconds": seconds, "parsed": reading is not None, "rules_liked": set(rules.liked_ids),
                     "llm_liked": llm_liked, "recall_rules": request_recall(recommender, rules, case),
                     "recall_merged": request_recall(recommender, merged, case)})
    return summarise(rows)


def summarise(rows: list[dict]) -> dict:
    from agent.core.timing import percentiles

    agree = [r["rules_liked"] == r["llm_liked"] for r in rows]
    shared = sum(len(r["rules_liked"] & r["llm_liked"]) for r in rows)
    return {"cases": len(rows), "parsed": sum(r["parsed"] for r in rows), "liked_sets_equal": float(np.mean(agree)),
            "rules_liked": sum(len(r["rules_liked"]) for r in rows), "llm_liked": sum(len(r["llm_liked"]) for r in rows),
            "liked_shared": shared, "seconds": percentiles([r["seconds"] for r in rows]),
            "recall@10_rules": float(np.mean([h for r in rows for h in r["recall_rules"]])),
            "recall@10_merged": float(np.mean([h for r in rows for h in r["recall_merged"]])),
            "targets": sum(len(r["recall_rules"]) for r in rows)}


def main(argv=None) -> None:
    from agent.llm import load_llm
    from agent.provision.models import model_path
    from eval.conversations.retrieval_only import arguments, open_bench
    from eval.conversations.run import build_cases

    ap = arguments(argparse.ArgumentParser())
    ap.add_argument("--cases", type=int, default=30)
    ap.add_argument("--role", default="llm", help="LLM role that reads the conversation")
    args = ap.parse_args(argv)
    bench = open_bench(args)
    catalog, recommender, settings = bench.catalog, bench.recommender, bench.settings
    cases, _ = build_cases(bench.dialogues, bench.mapper)
    llm = load_llm(settings, model_path(settings, args.role))
    out = compare(cases[:args.cases], catalog, recommender, llm)
    print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()})


if __name__ == "__main__":
    main()
