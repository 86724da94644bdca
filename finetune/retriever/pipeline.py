"""``recsage train-retriever``: the collaborative models, their vectors in Chroma, the hybrid's weights.

Everything is fitted on the protocol's training sequences; the validation items choose EASE's l2,
stop SASRec's training and choose the hybrid's weights over SASRec, EASE and content. Test items
are never read here.

Artefacts (safetensors + JSON, nothing pickled), in the store's retriever/ folder::

    hybrid.json                  the hybrid's weights, chosen on validation, and the grid's scores
    summary.json                 what train_retriever returned: timings, choices, validation metrics
    ease/ease.safetensors        B (n_items x n_items float32), fitted on training only
    ease/ease.json               config (l2), n_items, item_ids (dense index -> movieId)
    sasrec/model.safetensors     best-epoch weights
    sasrec/config.json           config, n_items, dim, item_ids, training log and best epoch
    sasrec/checkpoint/           last epoch's weights + optimizer (resume), state.json

plus the SASRec item vectors in the store's ``items_sasrec`` collection.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.core.config import Settings
from agent.core.io import write_json
from agent.retrieval import ease as ease_files
from agent.retrieval import sasrec as sasrec_files
from agent.retrieval.ease import EaseModel, load_ease
from agent.retrieval.interactions import Split
from agent.retrieval.retriever import (
    HYBRID_FILE,
    SASREC_COLLECTION,
    Retriever,
    open_retriever,
)
from agent.retrieval.sasrec import SasrecModel, load_sasrec
from finetune.retriever.ease import DEFAULT_L2_GRID, fit_with_selection
from finetune.retriever.hybrid_weights import HYBRID_GRID, choose_weights
from finetune.retriever.sasrec import train_sasrec
from finetune.retriever.sasrec_config import SasrecConfig

SUMMARY_FILE = "summary.json"


def train_models(split: Split, out_dir: Path, seed: int = 0, *, sasrec_config: SasrecConfig | None = None,
                 ease_grid: Sequence[float] = DEFAULT_L2_GRID, resume: bool = True,
                 progress: bool = True) -> dict[str, Any]:
    """Fit EASE (l2 chosen on validation) and train SASRec (early-stopped on validation) into ``out_dir``.

    ``seed`` overrides ``sasrec_config.seed``. Returns the choices, wall-clock timings in seconds
    and validation metrics.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    ease_model, ease_report = fit_with_selection(split, ease_grid, refit_on_val=False)
    ease_model.save(out_dir / ease_files.MODEL_DIR)
    timings["ease_l2_selection"] = ease_report["selection_seconds"]
    timings["ease_fit"] = ease_report["fit_seconds"]

    config = (sasrec_config or SasrecConfig()).with_overrides(seed=seed)
    t = time.perf_counter()
    sasrec = train_sasrec(split, config, out_dir / sasrec_files.MODEL_DIR, resume=resume, progress=progress)
    timings["sasrec_wall"] = time.perf_counter() - t
    timings["sasrec_train_epochs"] = sasrec.info["train_seconds"]  # all epochs, incl. before a resume
    timings["total"] = time.perf_counter() - started
    return {
        "split": split.stats(),
        "seed": seed,
        "ease": {"l2": ease_report["l2"], "val_ndcg@10_by_l2": ease_report["grid"], "val": ease_report["val"]},
        "sasrec": {"config": config.model_dump(), "best_epoch": sasrec.info["best_epoch"],
                   "epochs_run": sasrec.info["epochs_run"], "val": sasrec.info["best_val"]},
        "timings_seconds": timings,
    }


def choose_hybrid(retriever: Retriever, sasrec: SasrecModel, ease: EaseModel) -> dict[str, Any]:
    """The hybrid's weights over SASRec, EASE and the content vectors, chosen on validation."""
    split = retriever.split
    histories = [split.history(u, "val") for u in range(split.n_users)]
    systems = {
        "sasrec": sasrec.score_matrix(histories),
        "ease": ease.score_matrix(histories),
        "content": np.stack([retriever.scores("content", h) for h in histories]),
    }
    weights, table = choose_weights(split, systems, HYBRID_GRID)
    return {
        "weights": weights,
        "chosen_on": "validation NDCG@10 (training histories only)",
        "val": next(m for w, m in table if w == weights),
        "grid": [{"weights": w, "val_ndcg@10": m["NDCG@10"], "val_recall@20": m["Recall@20"]} for w, m in table],
    }


def train_retriever(store_dir: Path, movielens: Path, settings: Settings, seed: int = 0,
                    max_minutes: float = 0.0, progress: bool = True,
                    sasrec_config: SasrecConfig | None = None) -> dict:
    """Train the models, store SASRec's item vectors in Chroma, choose and save the hybrid's weights.

    ``sasrec_config`` defaults to ``SasrecConfig()``; ``seed`` and ``max_minutes`` override its fields.
    """
    started = time.perf_counter()
    retriever = open_retriever(store_dir, movielens, settings)
    split = retriever.split
    split_seconds = time.perf_counter() - started
    _ = retriever.content_items  # fail fast if the store lacks items of the interaction data
    config = (sasrec_config or SasrecConfig()).with_overrides(max_minutes=max_minutes)
    summary = train_models(split, retriever.dir, seed=seed, sasrec_config=config, progress=progress)
    summary["timings_seconds"] = {"split": split_seconds, **summary["timings_seconds"]}

    # read back from their files, so the vectors and weights are exactly what serving loads
    sasrec, ease = load_sasrec(retriever.dir), load_ease(retriever.dir)

    t = time.perf_counter()
    titles = [{"title": m.get("title", "")} for m in retriever.item_meta]
    retriever.store.upsert(split.item_ids, sasrec.item_vectors(), None, titles, name=SASREC_COLLECTION, space="ip")
    summary["timings_seconds"]["chroma_sasrec_vectors"] = time.perf_counter() - t

    t = time.perf_counter()
    hybrid = choose_hybrid(retriever, sasrec, ease)
    summary["timings_seconds"]["hybrid_selection"] = time.perf_counter() - t
    summary["timings_seconds"]["train_retriever_total"] = time.perf_counter() - started
    write_json(retriever.dir / HYBRID_FILE, hybrid)
    summary["hybrid"] = {"weights": hybrid["weights"], "val": hybrid["val"]}
    write_json(retriever.dir / SUMMARY_FILE, summary)
    return summary
