"""What a rerun of ``train-retriever`` has to do, from what the last run trained on.

Every run records its data (the interactions file's size, mtime and hash; the split's sizes and
digests) in summary.json. A rerun compares:

- same split, same models: nothing to do ("unchanged"), unless forced;
- new interactions, same item vocabulary and SASRec architecture: SASRec warm-starts from its
  last weights (a few epochs, early-stopped on the new validation items), EASE refits (closed
  form, seconds);
- another item vocabulary (items added or dropped, ids remapped) or architecture: from scratch,
  since an embedding row means another item.

A run in progress leaves pending.json; a rerun on the same data continues that run from its
checkpoint (the SASRec trainer resumes exactly) instead of starting over.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from agent.core.errors import InputError
from agent.core.io import read_json, sha256_file
from agent.retrieval import sasrec as sasrec_files
from agent.retrieval.interactions import Split
from agent.retrieval.retriever import HYBRID_FILE
from agent.retrieval.sasrec import SasrecArchitecture

SUMMARY_FILE = "summary.json"
PENDING_FILE = "pending.json"
MODEL_CHOICES = ("ease", "sasrec")
SasrecStart = Literal["scratch", "warm"]


def split_digest(split: Split) -> str:
    """A digest of everything the models are fitted and selected on (ids, sequences, held-out items)."""
    h = hashlib.sha256()
    for ids in (split.user_ids, split.item_ids):
        h.update("\n".join(ids).encode() + b"\0")
    for seq in split.train:
        h.update(np.asarray(seq, dtype=np.int64).tobytes() + b"|")
    h.update(np.asarray(split.val, dtype=np.int64).tobytes() + np.asarray(split.test, dtype=np.int64).tobytes())
    return h.hexdigest()


def items_digest(item_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(item_ids).encode()).hexdigest()


def data_fingerprint(interactions_path: Path, split: Split) -> dict:
    """What a run trains on: the file as found on disk and the protocol split made from it."""
    path = Path(interactions_path)
    stat = path.stat()
    return {
        "file": str(path), "bytes": stat.st_size, "mtime": int(stat.st_mtime), "sha256": sha256_file(path),
        **split.stats(), "items_sha256": items_digest(split.item_ids), "split_sha256": split_digest(split),
    }


@dataclass(frozen=True)
class Plan:
    action: Literal["unchanged", "train"]
    sasrec: SasrecStart | None  # None: SASRec is not trained this run
    message: str
    warm_epoch: int = 0  # the best epoch of the model a warm start continues from
    resume: bool = False  # continue the checkpoint of an interrupted run on the same data

    def to_json(self) -> dict:
        return asdict(self)


def check_models(models: Sequence[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(models))
    unknown = [m for m in chosen if m not in MODEL_CHOICES]
    if unknown or "ease" not in chosen:
        raise InputError(f"models {list(models)}: choose \"ease\" (fast: EASE + content + popularity) "
                         "or \"ease\" and \"sasrec\"")
    return tuple(m for m in MODEL_CHOICES if m in chosen)


def _read(path: Path) -> dict | None:
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def _previous_sasrec(folder: Path) -> dict | None:
    return _read(folder / sasrec_files.MODEL_DIR / sasrec_files.CONFIG_FILE)


def _sasrec_start(folder: Path, data: dict, architecture: dict, previous: dict | None) -> tuple[SasrecStart, str, int]:
    saved = _previous_sasrec(folder)
    if saved is None or not (folder / sasrec_files.MODEL_DIR / sasrec_files.WEIGHTS_FILE).exists():
        return "scratch", "trained SASRec from scratch (no earlier model)", 0
    if items_digest(saved.get("item_ids", [])) != data["items_sha256"]:
        before = len(saved.get("item_ids", []))
        return "scratch", (f"trained SASRec from scratch: the items changed ({before:,} before, "
                           f"{data['items']:,} now)"), 0
    if SasrecArchitecture.from_saved(saved["config"]) != SasrecArchitecture.from_saved(architecture):
        return "scratch", "trained SASRec from scratch: its architecture settings changed", 0
    epoch = int(saved.get("info", {}).get("best_epoch", 0))
    old = (previous or {}).get("data") or (previous or {}).get("split") or {}
    if "interactions" in old:
        news = f"{data['interactions'] - old['interactions']:,} new interactions"
    else:
        news = "interactions of unknown age"
    return "warm", f"resumed SASRec from epoch {epoch}: {news}, same {data['items']:,} items", epoch


def _trained_on(folder: Path, record: dict | None, data: dict) -> bool:
    """Whether a summary (or pending run) was trained on exactly ``data``'s split. A summary from
    before fingerprints has only the split's sizes; with the same sizes and the same SASRec items
    it counts as the same data, so an old store is not retrained for nothing."""
    if not record:
        return False
    if "data" in record:
        return record["data"].get("split_sha256") == data["split_sha256"]
    sizes = {k: data[k] for k in ("users", "items", "interactions")}
    saved = _previous_sasrec(folder) or {}
    return record.get("split") == sizes and items_digest(saved.get("item_ids", [])) == data["items_sha256"]


def _models_of(record: dict) -> tuple[str, ...]:
    return tuple(record.get("models") or (("ease", "sasrec") if "sasrec" in record else ("ease",)))


def plan_training(folder: Path, data: dict, models: Sequence[str], architecture: dict,
                  force: bool = False) -> Plan:
    """What to train in ``folder`` (the retriever folder) for ``data`` (:func:`data_fingerprint`)."""
    models = check_models(models)
    pending, previous = _read(folder / PENDING_FILE), _read(folder / SUMMARY_FILE)
    if force:
        return Plan("train", "scratch" if "sasrec" in models else None, f"retrained {' + '.join(models)} from scratch (--force)")
    if pending and _trained_on(folder, pending, data) and _models_of(pending) == models:
        return Plan("train", pending.get("sasrec"), "continued the interrupted run from its checkpoint",
                    int(pending.get("warm_epoch", 0)), resume=True)
    if previous and _trained_on(folder, previous, data) and _models_of(previous) == models \
            and (folder / HYBRID_FILE).exists():
        return Plan("unchanged", None, f"unchanged: the same {data['interactions']:,} interactions and "
                                       f"{data['items']:,} items as the last run; reused its models (--force retrains)")
    if "sasrec" not in models:
        return Plan("train", None, f"fitted EASE on {data['interactions']:,} interactions, {data['items']:,} items")
    start, message, epoch = _sasrec_start(folder, data, architecture, previous)
    return Plan("train", start, message + "; refitted EASE", epoch)
