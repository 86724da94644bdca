"""``recsage train-retriever``: collaborative models, their vectors in Chroma, hybrid weights.

EASE and SASRec are trained on the protocol's training sequences (finetune.retriever.pipeline); the
hybrid's weights over SASRec, EASE and content are then chosen on the validation targets only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from agent.core.config import Settings
from agent.retrieval.retriever import HYBRID_FILE, HYBRID_GRID, SASREC_COLLECTION, open_retriever


def train_retriever(store_dir: Path, movielens: Path, settings: Settings, seed: int = 0,
                    max_minutes: float = 0.0, progress: bool = True) -> dict:
    from finetune.retriever.fusion import choose_weights
    from finetune.retriever.sasrec_config import SasrecConfig
    from finetune.retriever.pipeline import load_ease, load_sasrec, train_all

    retriever = open_retriever(store_dir, movielens, settings)
    split = retriever.split
    started = time.perf_counter()
    _ = retriever.content_items  # fail fast if the store lacks items of the interaction data
    summary = train_all(movielens, retriever.dir, seed=seed, sasrec_config=SasrecConfig(max_minutes=max_minutes),
                        progress=progress)
    sasrec, ease = load_sasrec(retriever.dir), load_ease(retriever.dir)

    t = time.perf_counter()
    titles = [{"title": m.get("title", "")} for m in retriever.item_meta]
    retriever.store.upsert(split.item_ids, sasrec.item_vectors(), None, titles, name=SASREC_COLLECTION, space="ip")
    summary["timings_seconds"]["chroma_sasrec_vectors"] = time.perf_counter() - t

    t = time.perf_counter()
    histories = [split.history(u, "val") for u in range(split.n_users)]
    systems = {
        "sasrec": sasrec.score_matrix(histories),
        "ease": ease.score_matrix(histories),
        "content": np.stack([retriever.scores("content", h) for h in histories]),
    }
    weights, table = choose_weights(split, systems, HYBRID_GRID)
    summary["timings_seconds"]["hybrid_selection"] = time.perf_counter() - t
    summary["timings_seconds"]["train_retriever_total"] = time.perf_counter() - started
    hybrid = {
        "weights": weights,
        "chosen_on": "validation NDCG@10 (training histories only)",
        "val": next(m for w, m in table if w == weights),
        "grid": [{"weights": w, "val_ndcg@10": m["NDCG@10"], "val_recall@20": m["Recall@20"]} for w, m in table],
    }
    (retriever.dir / HYBRID_FILE).write_text(json.dumps(hybrid, indent=1))
    summary["hybrid"] = {"weights": weights, "val": hybrid["val"]}
    return summary
