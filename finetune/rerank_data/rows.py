"""Request examples -> pointwise reranker training rows ({"prompt", "answer"}).

Prompts come from the reranker itself (:meth:`agent.rerank.reranker.LlmReranker.pointwise_prompt`), so what
LoRA trains on is token for token what inference scores: the answer is "yes" for the item whose facts
made the request and "no" for its hard negatives.
"""

from __future__ import annotations

import random


def build_rerank_rows(examples: list[dict], reranker, cards: dict[str, str], negatives_per_example: int = 3,
                      seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows: list[dict] = []
    for example in examples:
        negatives = [n for n in example["negatives"] if n in cards][:negatives_per_example]
        if example["positive"] not in cards or not negatives:
            continue
        labelled = [(example["positive"], "yes")] + [(n, "no") for n in negatives]
        rng.shuffle(labelled)
        rows += [{"prompt": reranker.pointwise_prompt(example["request"], cards[item]), "answer": answer}
                 for item, answer in labelled]
    return rows
