"""Train the collaborative retrievers (EASE, SASRec) and their fusion weights on the protocol split.

Everything is fitted on the training sequences; the validation items choose EASE's l2, stop
SASRec's training and choose the fusion weights. Test items are only read by ``evaluate_all``,
after every choice is made. Optionally EASE is refitted once on training + validation with the
chosen l2 (``ease_refit``), the usual practice for a final test number.

Artefacts (safetensors + JSON, nothing pickled)::

    out_dir/
      summary.json                 what train_all returned: timings, choices, validation metrics
      fusion.json                  chosen weights {"sasrec": 1.0, "ease": ...} and the grid's scores
      ease/ease.safetensors        B (n_items x n_items float32), fitted on training only
      ease/ease.json               config (l2), n_items, item_ids (dense index -> movieId)
      ease_refit/...               same l2, fitted on training + validation (if ease_refit)
      sasrec/model.safetensors     best-epoch weights
      sasrec/config.json           config, n_items, dim, item_ids, training log and best epoch
      sasrec/checkpoint/           last epoch's weights + optimizer (resume), state.json

Run ``python -m finetune.retriever.pipeline --data DIR/ml-latest-small --out runs/retriever`` to train
and print validation and test tables.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from eval.metrics import bootstrap_ci, evaluate, ndcg_from_ranks, paired_test
from agent.retrieval.interactions import Split, SplitName, make_split
from finetune.retriever import ease as ease_mod
from finetune.retriever import sasrec as sasrec_mod
from finetune.retriever.ease import (
    DEFAULT_L2_GRID,
    EaseConfig,
    EaseModel,
    fit_with_selection,
    train_ease,
)
from finetune.retriever.fusion import choose_weights, fuse_score_matrices, ranks_from_matrix
from finetune.retriever.sasrec import SasrecModel, train_sasrec
from finetune.retriever.sasrec_config import SasrecConfig, with_overrides

DEFAULT_FUSION_GRID: dict[str, tuple[float, ...]] = {
    "sasrec": (1.0,),
    "ease": (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0),
}
FUSION_FILE = "fusion.json"
SUMMARY_FILE = "summary.json"
REPORT_KS = (1, 5, 10, 20)


def _histories(split: Split, split_name: SplitName) -> list[np.ndarray]:
    return [split.history(u, split_name) for u in range(split.n_users)]


def train_all(
    movielens_dir: Path,
    out_dir: Path,
    seed: int = 0,
    *,
    sasrec_config: SasrecConfig | None = None,
    ease_grid: Sequence[float] = DEFAULT_L2_GRID,
    ease_refit: bool = True,
    fusion_grid: Mapping[str, Sequence[float]] | None = None,
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Train EASE and SASRec on the training split, choose fusion weights on validation, save all.

    ``seed`` overrides ``sasrec_config.seed``. Returns (and writes to summary.json) the choices,
    wall-clock timings in seconds and validation metrics; test metrics come from ``evaluate_all``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    split = make_split(Path(movielens_dir))
    timings: dict[str, float] = {"split": time.perf_counter() - started}

    ease_model, ease_report = fit_with_selection(split, ease_grid, refit_on_val=False)
    ease_model.save(out_dir / "ease")
    timings["ease_l2_selection"] = ease_report["selection_seconds"]
    timings["ease_fit"] = ease_report["fit_seconds"]
    if ease_refit:
        t = time.perf_counter()
        train_ease(split, EaseConfig(l2=ease_report["l2"], refit_on_val=True)).save(out_dir / "ease_refit")
        timings["ease_refit_fit"] = time.perf_counter() - t

    config = with_overrides(sasrec_config or SasrecConfig(), seed=seed)
    t = time.perf_counter()
    sasrec = train_sasrec(split, config, out_dir / "sasrec", resume=resume, progress=progress)
    timings["sasrec_wall"] = time.perf_counter() - t
    timings["sasrec_train_epochs"] = sasrec.info["train_seconds"]  # all epochs, incl. before a resume

    t = time.perf_counter()
    val_matrices = {"sasrec": sasrec.score_matrix(_histories(split, "val")),
                    "ease": ease_model.score_matrix(_histories(split, "val"))}
    weights, table = choose_weights(split, val_matrices, fusion_grid or DEFAULT_FUSION_GRID)
    timings["fusion_selection"] = time.perf_counter() - t
    best_val = next(metrics for w, metrics in table if w == weights)
    fusion = {"systems": list(val_matrices), "weights": weights, "val": best_val,
              "grid": [{"weights": w, "val_ndcg@10": m["NDCG@10"], "val_recall@10": m["Recall@10"]}
                       for w, m in table]}
    (out_dir / FUSION_FILE).write_text(json.dumps(fusion, indent=1))
    timings["total"] = time.perf_counter() - started

    summary = {
        "split": split.stats(),
        "seed": seed,
        "ease": {"l2": ease_report["l2"], "val_ndcg@10_by_l2": ease_report["grid"], "val": ease_report["val"],
                 "refit_on_val_saved": ease_refit},
        "sasrec": {"config": asdict(config), "best_epoch": sasrec.info["best_epoch"],
                   "epochs_run": sasrec.info["epochs_run"], "val": sasrec.info["best_val"]},
        "fusion": {"weights": weights, "val": best_val},
        "timings_seconds": timings,
    }
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
    return summary


def _model_dir(directory: Path, name: str, marker: str) -> Path:
    directory = Path(directory)
    return directory / name if (directory / name / marker).exists() else directory


def load_ease(directory: Path, refit: bool = False) -> EaseModel:
    """EASE from ``out_dir`` (its ease/ or ease_refit/ folder) or from a model folder itself."""
    return ease_mod.load_ease(_model_dir(directory, "ease_refit" if refit else "ease", ease_mod.CONFIG_FILE))


def load_sasrec(directory: Path) -> SasrecModel:
    """SASRec from ``out_dir`` (its sasrec/ folder) or from a model folder itself."""
    return sasrec_mod.load_sasrec(_model_dir(directory, "sasrec", sasrec_mod.CONFIG_FILE))


def load_fusion_weights(directory: Path) -> dict[str, float]:
    """The weights chosen on validation by ``train_all``."""
    path = Path(directory) / FUSION_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: run train_all first")
    return {k: float(v) for k, v in json.loads(path.read_text())["weights"].items()}


def evaluate_all(movielens_dir: Path, out_dir: Path, split_names: Sequence[SplitName] = ("val", "test"),
                 n_bootstrap: int = 1000) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of every saved system on each split: {split: {system: {metric: value}}}.

    Systems: ease, sasrec, fusion (sasrec + ease with the saved weights) and, at test time only,
    ease_refit and fusion_refit (the same weights with the EASE refitted on training + validation;
    on validation it would be scored on items it was fitted on). Each row carries a 95% bootstrap
    interval of NDCG@10, and fusions a paired test against SASRec alone.
    """
    split = make_split(Path(movielens_dir))
    out_dir = Path(out_dir)
    models: dict[str, Any] = {"ease": load_ease(out_dir), "sasrec": load_sasrec(out_dir)}
    if (out_dir / "ease_refit" / ease_mod.CONFIG_FILE).exists():
        models["ease_refit"] = load_ease(out_dir, refit=True)
    weights = load_fusion_weights(out_dir)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in split_names:
        histories = _histories(split, name)
        # the refitted EASE was fitted on the validation targets: only its test row is honest
        matrices = {k: m.score_matrix(histories) for k, m in models.items() if not (k == "ease_refit" and name == "val")}
        matrices["fusion"] = fuse_score_matrices(
            split, {"sasrec": matrices["sasrec"], "ease": matrices["ease"]}, weights, name)
        if "ease_refit" in matrices and name == "test":
            matrices["fusion_refit"] = fuse_score_matrices(
                split, {"sasrec": matrices["sasrec"], "ease": matrices["ease_refit"]}, weights, name)
        ranks = {k: ranks_from_matrix(split, m, name) for k, m in matrices.items()}
        rows = {}
        for system, r in ranks.items():
            row = evaluate(r, ks=REPORT_KS)
            low, high = bootstrap_ci(ndcg_from_ranks(r, 10), n=n_bootstrap)
            row.update({"NDCG@10_ci_low": low, "NDCG@10_ci_high": high})
            if system.startswith("fusion"):
                paired = paired_test(ndcg_from_ranks(r, 10), ndcg_from_ranks(ranks["sasrec"], 10), n=n_bootstrap)
                row.update({"NDCG@10_vs_sasrec": paired.mean_diff, "NDCG@10_vs_sasrec_p": paired.p_value})
            rows[system] = row
        results[name] = rows
    return results


def format_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Markdown table: one row per (split, system)."""
    lines = ["| split | system | NDCG@10 (95% CI) | Recall@10 | Recall@20 | MRR@10 | vs SASRec NDCG@10 (p) |",
             "|---|---|---|---|---|---|---|"]
    for split_name, rows in results.items():
        for system, m in rows.items():
            paired = (f"{m['NDCG@10_vs_sasrec']:+.4f} ({m['NDCG@10_vs_sasrec_p']:.3f})"
                      if "NDCG@10_vs_sasrec" in m else "")
            lines.append(
                f"| {split_name} | {system} | {m['NDCG@10']:.4f} ({m['NDCG@10_ci_low']:.3f}-{m['NDCG@10_ci_high']:.3f}) "
                f"| {m['Recall@10']:.4f} | {m['Recall@20']:.4f} | {m['MRR@10']:.4f} | {paired} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.retriever.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the ml-latest-small folder (ratings.csv, movies.csv)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the trained models (created)")
    parser.add_argument("--seed", type=int, default=0, help="SASRec seed")
    parser.add_argument("--threads", type=int, default=SasrecConfig.threads, help="torch threads for SASRec")
    parser.add_argument("--max-minutes", type=float, default=SasrecConfig.max_minutes,
                        help="SASRec training time budget in minutes (0 = none)")
    parser.add_argument("--eval-only", action="store_true", help="skip training; evaluate what --out holds")
    parser.add_argument("--no-resume", action="store_true", help="start SASRec over even if a checkpoint exists")
    args = parser.parse_args(argv)
    if not args.eval_only:
        config = SasrecConfig(threads=args.threads, max_minutes=args.max_minutes)
        summary = train_all(args.data, args.out, seed=args.seed, sasrec_config=config, resume=not args.no_resume)
        print(json.dumps({"timings_seconds": summary["timings_seconds"], "ease_l2": summary["ease"]["l2"],
                          "sasrec_best_epoch": summary["sasrec"]["best_epoch"],
                          "fusion_weights": summary["fusion"]["weights"]}, indent=1))
    print(format_table(evaluate_all(args.data, args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
