"""``recsage bench ingest``: items/s per ingest stage at several thread / OCR-worker settings.

Each setting runs in a fresh process on a fresh store (so model loading and thread pools do not
leak between settings); the first setting is the baseline the others are compared with.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from agent.core.config import Settings


def run_once(movielens: Path, posters: Path | None, sample: int, threads: int, ocr_workers: int,
             home: Path) -> dict[str, float]:
    """Ingest the first ``sample`` movies (those with posters first) into a fresh store."""
    from agent.ingest.catalog import load_movielens
    from agent.ingest.pipeline import build_pipeline, ingest
    from agent.ingest.store import Store

    settings = Settings(home=home, threads=threads, ocr_workers=ocr_workers)
    items = load_movielens(movielens, posters).items
    items = sorted(items, key=lambda it: it.image is None)[:sample]
    with tempfile.TemporaryDirectory() as tmp:
        build_pipeline(settings).embedder.embed(["warm-up"])  # model load is not a per-item cost
        report = ingest(items, Store(Path(tmp)), settings, progress=False)
    return report.seconds


def bench_ingest(movielens: Path, posters: Path | None, sample: int, variants: list[tuple[int, int]],
                 settings: Settings) -> list[dict]:
    """One row per (threads, OCR workers) setting: ``{"threads", "ocr_workers", "seconds": {stage: s}}``."""
    rows = []
    for threads, workers in variants:
        cmd = [sys.executable, "-m", "eval.bench.ingest", str(movielens), str(posters or ""), str(sample),
               str(threads), str(workers), str(settings.home)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"benchmark run failed ({threads} threads):\n{out.stderr[-2000:]}")
        seconds = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"threads": threads, "ocr_workers": workers, "seconds": seconds})
    return rows


def timed_stages(rows: list[dict]) -> list[str]:
    """The stages every table row reports items/s for (setup and hashing are not per-item work)."""
    return sorted({s for r in rows for s in r["seconds"] if s not in ("setup", "hash")})


if __name__ == "__main__":
    movielens, posters, sample, threads, workers, home = sys.argv[1:7]
    import os

    os.environ["OMP_NUM_THREADS"] = threads
    result = run_once(Path(movielens), Path(posters) if posters else None, int(sample), int(threads),
                      int(workers), Path(home))
    print(json.dumps(result))
