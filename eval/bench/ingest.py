"""``recsage bench ingest``: items/s per ingest stage at several thread / OCR-worker settings, and
with ``--videos DIR`` a video row: seconds of each video stage per minute of clip.

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


VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")


def run_videos(folder: Path, threads: int, ocr_workers: int, home: Path) -> dict:
    """Ingest every clip of ``folder`` as one item each into a fresh store: stage seconds and clip minutes."""
    from agent.ingest.catalog import Item
    from agent.ingest.pipeline import build_pipeline, ingest
    from agent.ingest.store import Store
    from agent.ingest.video import probe

    settings = Settings(home=home, threads=threads, ocr_workers=ocr_workers)
    clips = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    minutes = sum(probe(p, settings).seconds or 0.0 for p in clips) / 60
    items = [Item(id=f"clip{i}", title=p.stem, video=str(p)) for i, p in enumerate(clips)]
    with tempfile.TemporaryDirectory() as tmp:
        build_pipeline(settings).embedder.embed(["warm-up"])
        report = ingest(items, Store(Path(tmp)), settings, progress=False)
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} clips failed: {report.failed[0].reason}")
    return {"clips": len(clips), "clip_minutes": round(minutes, 3),
            "seconds": {k: v for k, v in report.seconds.items() if k.startswith("video:")}}


def _subprocess(args: list[str], threads: int) -> dict:
    cmd = [sys.executable, "-m", "eval.bench.ingest", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark run failed ({threads} threads):\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_ingest(movielens: Path, posters: Path | None, sample: int, variants: list[tuple[int, int]],
                 settings: Settings, videos: Path | None = None) -> list[dict]:
    """One row per (threads, OCR workers) setting: ``{"threads", "ocr_workers", "seconds": {stage: s}}``;
    with ``videos``, one more row at the first setting, with ``video: {clips, clip_minutes}`` and
    ``seconds_per_clip_minute`` per video stage."""
    rows = []
    for threads, workers in variants:
        seconds = _subprocess([str(movielens), str(posters or ""), str(sample), str(threads), str(workers),
                               str(settings.home)], threads)
        rows.append({"threads": threads, "ocr_workers": workers, "seconds": seconds})
    if videos is not None:
        threads, workers = variants[0]
        got = _subprocess([str(movielens), "", "0", str(threads), str(workers), str(settings.home), str(videos)], threads)
        per_minute = {k: round(v / got["clip_minutes"], 3) for k, v in got["seconds"].items()} if got["clip_minutes"] else {}
        rows.append({"threads": threads, "ocr_workers": workers, "video": {"clips": got["clips"],
                     "clip_minutes": got["clip_minutes"]}, "seconds": got["seconds"], "seconds_per_clip_minute": per_minute})
    return rows


def timed_stages(rows: list[dict]) -> list[str]:
    """The stages every table row reports items/s for (setup, hashing and removing dropped items are
    not per-item work)."""
    return sorted({s for r in rows if "video" not in r for s in r["seconds"] if s not in ("setup", "hash", "remove")})


if __name__ == "__main__":
    movielens, posters, sample, threads, workers, home = sys.argv[1:7]
    import os

    os.environ["OMP_NUM_THREADS"] = threads
    if len(sys.argv) > 7:
        result = run_videos(Path(sys.argv[7]), int(threads), int(workers), Path(home))
    else:
        result = run_once(Path(movielens), Path(posters) if posters else None, int(sample), int(threads),
                          int(workers), Path(home))
    print(json.dumps(result))
