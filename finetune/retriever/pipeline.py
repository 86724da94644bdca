"""``recsage train-retriever``: the collaborative models, their vectors in Chroma, the hybrid's weights.

Everything is fitted on the protocol's training sequences of the project's interactions log; the
validation items choose EASE's l2, stop SASRec's training and choose the hybrid's weights over
SASRec, EASE and content (or, without SASRec, over EASE, content and popularity: the fast mode).
Test items are never read here. A rerun does only what new data needs (finetune.retriever.resume).

Artefacts (safetensors + JSON, nothing pickled), in the project's ``<artifacts>/retriever/``::

    hybrid.json                  the hybrid's weights, chosen on validation, and the grid's scores
    summary.json                 what train_retriever returned: the data trained on, the plan,
                                 timings, choices, validation metrics
    pending.json                 only while a run is in progress (a rerun continues it)
    ease/ease.safetensors        B (n_items x n_items float32), fitted on training only
    ease/ease.json               config (l2), n_items, item_ids (dense index -> item id)
    sasrec/model.safetensors     best-epoch weights
    sasrec/config.json           config, n_items, dim, item_ids, training log and best epoch
    sasrec/checkpoint/           last epoch's weights + optimizer (resume), state.json

plus the SASRec item vectors in the store's ``items_sasrec`` collection.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.core.config import Settings
from agent.core.io import read_json, write_json
from agent.core.project import Project
from agent.retrieval import ease as ease_files
from agent.retrieval import sasrec as sasrec_files
from agent.retrieval.ease import load_ease
from agent.retrieval.interactions import Split
from agent.retrieval.retriever import (
    HYBRID_FILE,
    SASREC_COLLECTION,
    Retriever,
    open_retriever,
)
from agent.retrieval.sasrec import load_sasrec
from finetune.retriever.ease import DEFAULT_L2_GRID, fit_with_selection
from finetune.retriever.hybrid_weights import choose_weights, hybrid_grid
from finetune.retriever.resume import (
    PENDING_FILE,
    SUMMARY_FILE,
    Plan,
    check_models,
    data_fingerprint,
    plan_training,
)
from finetune.retriever.sasrec import CHECKPOINT_DIR, train_sasrec
from finetune.retriever.sasrec_config import SasrecConfig

__all__ = ["SUMMARY_FILE", "choose_hybrid", "train_models", "train_retriever"]

WARM_EPOCHS = 15
"""Most epochs a warm start fine-tunes SASRec for: the model already fits all but the new events."""
WARM_PATIENCE = 3


def train_models(split: Split, out_dir: Path, seed: int = 0, *, models: Sequence[str] = ("ease", "sasrec"),
                 sasrec_config: SasrecConfig | None = None, ease_grid: Sequence[float] = DEFAULT_L2_GRID,
                 resume: bool = True, warm_start: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Fit EASE (l2 chosen on validation) and, if in ``models``, train SASRec (early-stopped on
    validation; from ``warm_start``'s weights when given) into ``out_dir``.

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
    summary: dict[str, Any] = {
        "split": split.stats(), "seed": seed,
        "ease": {"l2": ease_report["l2"], "val_ndcg@10_by_l2": ease_report["grid"], "val": ease_report["val"]},
    }
    if "sasrec" in models:
        config = (sasrec_config or SasrecConfig()).with_overrides(seed=seed)
        t = time.perf_counter()
        sasrec = train_sasrec(split, config, out_dir / sasrec_files.MODEL_DIR, resume=resume, progress=progress,
                              warm_start=warm_start)
        timings["sasrec_wall"] = time.perf_counter() - t
        timings["sasrec_train_epochs"] = sasrec.info["train_seconds"]  # all epochs, incl. before a resume
        summary["sasrec"] = {"config": config.model_dump(), "best_epoch": sasrec.info["best_epoch"],
                             "epochs_run": sasrec.info["epochs_run"], "val": sasrec.info["best_val"]}
    timings["total"] = time.perf_counter() - started
    summary["timings_seconds"] = timings
    return summary


def choose_hybrid(retriever: Retriever, models: Sequence[str] = ("ease", "sasrec")) -> dict[str, Any]:
    """The hybrid's weights, chosen on validation, over the trained ``models`` (read back from their
    files, so they are exactly what serving loads) and the content vectors; without SASRec, over
    EASE, content and popularity."""
    split = retriever.split
    histories = [split.history(u, "val") for u in range(split.n_users)]
    systems: dict[str, Any] = {}
    if "sasrec" in models:
        systems["sasrec"] = load_sasrec(retriever.dir).score_matrix(histories)
    systems["ease"] = load_ease(retriever.dir).score_matrix(histories)
    systems["content"] = np.stack([retriever.scores("content", h) for h in histories])
    grid = hybrid_grid(models)
    if "popularity" in grid:
        systems["popularity"] = np.broadcast_to(retriever.popularity("val"), (split.n_users, split.n_items))
    weights, table = choose_weights(split, systems, grid)
    return {
        "weights": weights,
        "chosen_on": "validation NDCG@10 (training histories only)",
        "val": next(m for w, m in table if w == weights),
        "grid": [{"weights": w, "val_ndcg@10": m["NDCG@10"], "val_recall@20": m["Recall@20"]} for w, m in table],
    }


def train_retriever(project: Project, settings: Settings, *, seed: int = 0, max_minutes: float = 0.0,
                    models: Sequence[str] = ("ease", "sasrec"), progress: bool = True, force: bool = False,
                    sasrec_config: SasrecConfig | None = None) -> dict:
    """Train what the project's data needs (see finetune.retriever.resume), store SASRec's item
    vectors in the project's Chroma, choose and save the hybrid's weights.

    ``models=("ease",)`` is the fast mode (no SASRec). ``force`` retrains from scratch.
    ``sasrec_config`` defaults to ``SasrecConfig()``; ``seed`` and ``max_minutes`` override its
    fields. Returns the summary (also in summary.json), whose ``plan`` says what was done.
    """
    started = time.perf_counter()
    models = check_models(models)
    retriever = open_retriever(project, settings)
    split = retriever.split
    _ = retriever.content_items  # fail fast if the store lacks items of the interaction data
    data = data_fingerprint(project.require_interactions().path, split)
    split_seconds = time.perf_counter() - started
    config = (sasrec_config or SasrecConfig()).with_overrides(max_minutes=max_minutes, seed=seed)
    plan = plan_training(retriever.dir, data, models, config.model_dump(), force)
    if plan.action == "unchanged":
        summary = _reused(retriever.dir, plan, time.perf_counter() - started)
    else:
        summary = _run(retriever, plan, data, models, config, progress)
        summary["timings_seconds"] = {"split": split_seconds, **summary["timings_seconds"],
                                      "train_retriever_total": time.perf_counter() - started}
        write_json(retriever.dir / SUMMARY_FILE, summary)
        (retriever.dir / PENDING_FILE).unlink(missing_ok=True)
    if progress:
        print(f"train-retriever: {plan.message}", file=sys.stderr)
    return summary


def _reused(folder: Path, plan: Plan, seconds: float) -> dict:
    """The last run's summary, with the weights in use (a summary from before they were recorded
    there lacks them) and this run's time."""
    summary = read_json(folder / SUMMARY_FILE)
    hybrid = read_json(folder / HYBRID_FILE)
    return {**summary, "hybrid": {"weights": hybrid["weights"], "val": hybrid.get("val", {})}, "plan": plan.to_json(),
            "timings_seconds": {**summary.get("timings_seconds", {}), "train_retriever_total": seconds}}


def _run(retriever: Retriever, plan: Plan, data: dict, models: tuple[str, ...], config: SasrecConfig,
         progress: bool) -> dict:
    folder = retriever.dir
    folder.mkdir(parents=True, exist_ok=True)
    if not plan.resume:  # a checkpoint of other data must never be continued
        shutil.rmtree(folder / sasrec_files.MODEL_DIR / CHECKPOINT_DIR, ignore_errors=True)
    write_json(folder / PENDING_FILE, {"data": data, "models": list(models), "sasrec": plan.sasrec,
                                       "warm_epoch": plan.warm_epoch})
    if plan.sasrec == "warm":
        config = config.with_overrides(epochs=min(config.epochs, WARM_EPOCHS),
                                       patience=min(config.patience, WARM_PATIENCE))
    warm = folder / sasrec_files.MODEL_DIR if plan.sasrec == "warm" else None
    summary = train_models(retriever.split, folder, seed=config.seed, models=models, sasrec_config=config,
                           resume=plan.resume, warm_start=warm, progress=progress)
    if "sasrec" in models:
        t = time.perf_counter()
        titles = [{"title": m.get("title", "")} for m in retriever.item_meta]
        retriever.store.upsert(retriever.split.item_ids, load_sasrec(folder).item_vectors(), None, titles,
                               name=SASREC_COLLECTION, space="ip")
        summary["timings_seconds"]["chroma_sasrec_vectors"] = time.perf_counter() - t
    t = time.perf_counter()
    hybrid = choose_hybrid(retriever, models)
    summary["timings_seconds"]["hybrid_selection"] = time.perf_counter() - t
    write_json(folder / HYBRID_FILE, hybrid)
    summary.update(hybrid={"weights": hybrid["weights"], "val": hybrid["val"]}, data=data, models=list(models),
                   plan=plan.to_json())
    return summary
