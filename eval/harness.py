"""``recsage eval``: one system on the protocol's validation or test users, table + JSON + run file."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.core.errors import InputError
from eval.metrics import (
    bootstrap_ci,
    evaluate,
    ndcg_from_ranks,
    paired_test,
    rank_of_target,
)
from eval.run_io import qrels_for, ranks_from_run, read_run, top_k_items

KS = (1, 5, 10, 20, 50)
RUN_DEPTH = 50


@dataclass
class EvalResult:
    system: str
    split: str
    users: list[str]  # original userIds, in evaluation order
    ranks: np.ndarray
    run: dict[str, dict[str, float]]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        return evaluate(self.ranks, ks=KS)


def sample_users(n_users: int, n: int | None, seed: int = 0) -> list[int]:
    """All users, or a seeded sample of ``n`` (sorted, so runs are comparable)."""
    if n is not None and n <= 0:
        raise InputError(f"--users must be a positive integer, got {n}")
    if n is None or n >= n_users:
        return list(range(n_users))
    return sorted(np.random.default_rng(seed).choice(n_users, size=n, replace=False).tolist())


def score_user(retriever, system: str, split_name: str, user: int) -> tuple[int, dict[str, float]]:
    """One user of the protocol: the rank of the held-out item and the user's top ``RUN_DEPTH`` run
    row. The unit of work of every engine (``eval --engine ray`` calls it on its actors)."""
    split = retriever.split
    history = split.history(user, split_name)
    scores = np.asarray(retriever.scores(system, history, split_name), dtype=np.float64)
    return int(rank_of_target(scores, split.target(user, split_name), history)), top_k_items(split, scores, history, RUN_DEPTH)


def run_system(retriever, system: str, split_name: str, users: list[int], progress: bool = True) -> EvalResult:
    start = time.perf_counter()
    iterator = users
    if progress:
        from agent.core.progress import progress as progress_bars

        iterator = progress_bars(users, f"eval {system} ({split_name})")
    scored = [score_user(retriever, system, split_name, user) for user in iterator]
    return eval_result(retriever.split, system, split_name, users, scored, time.perf_counter() - start)


def eval_result(split, system: str, split_name: str, users: list[int], scored: list[tuple[int, dict[str, float]]],
                seconds: float) -> EvalResult:
    """The result of ``users`` scored in this order (one :func:`score_user` pair each)."""
    run = {split.user_ids[u]: row for u, (_, row) in zip(users, scored, strict=True)}
    return EvalResult(system, split_name, [split.user_ids[u] for u in users], np.array([r for r, _ in scored]), run,
                      {"total": seconds, "per_user_ms": 1000 * seconds / max(len(users), 1)})


def compare_with_run(result: EvalResult, split, other_run_file: Path) -> dict:
    """Paired test of NDCG@10 against another system's run file, on the users both contain."""
    other = read_run(Path(other_run_file))
    qrels = qrels_for(split, result.split)
    common = [u for u in result.users if u in other]
    if not common:
        raise ValueError(f"{other_run_file} has none of the evaluated users: was it made on the same split?")
    sub_qrels = {u: qrels[u] for u in common}
    mine = ndcg_from_ranks(ranks_from_run({u: result.run[u] for u in common}, sub_qrels), 10)
    theirs = ndcg_from_ranks(ranks_from_run(other, sub_qrels), 10)
    paired = paired_test(mine, theirs)
    return {
        "other_run": str(other_run_file), "users": len(common),
        "ndcg@10_diff": paired.mean_diff, "ci95": [paired.ci_low, paired.ci_high], "p_value": paired.p_value,
        "significant": bool(paired.p_value < 0.05 and (paired.ci_low > 0 or paired.ci_high < 0)),
    }


def summary(result: EvalResult, split, settings: dict) -> dict:
    low, high = bootstrap_ci(ndcg_from_ranks(result.ranks, 10))
    return {
        "system": result.system, "split": result.split, "users": len(result.users),
        "metrics": result.metrics, "ndcg@10_ci95": [low, high],
        "protocol": split.stats(), "settings": settings, "seconds": result.seconds,
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def print_table(rows: list[dict]) -> None:
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("system", "split", "users", "NDCG@10 (95% CI)", "Recall@10", "Recall@20", "MRR@10",
                  "NDCG@20", "seconds")
    for r in rows:
        m, ci = r["metrics"], r["ndcg@10_ci95"]
        table.add_row(r["system"], r["split"], str(r["users"]), f"{m['NDCG@10']:.4f} ({ci[0]:.3f}-{ci[1]:.3f})",
                      f"{m['Recall@10']:.4f}", f"{m['Recall@20']:.4f}", f"{m['MRR@10']:.4f}", f"{m['NDCG@20']:.4f}",
                      f"{r['seconds']['total']:.1f}")
    table_console().print(table)
