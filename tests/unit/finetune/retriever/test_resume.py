"""What a rerun of train-retriever does: unchanged, warm start, from scratch, continue, by hand-made splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.core.errors import InputError
from agent.retrieval.interactions import Split
from finetune.retriever.resume import (
    PENDING_FILE,
    SUMMARY_FILE,
    check_models,
    data_fingerprint,
    items_digest,
    plan_training,
    split_digest,
)
from finetune.retriever.sasrec_config import SasrecConfig

ARCH = SasrecConfig(hidden=16, n_blocks=1, max_len=10).model_dump()


def make(train: list[list[int]], items: list[str]) -> Split:
    """Users u0.. with the given training items; validation and test are items 0 and 1."""
    users = [f"u{i}" for i in range(len(train))]
    return Split(users, items, {u: i for i, u in enumerate(users)}, {m: i for i, m in enumerate(items)},
                 [np.asarray(t, dtype=np.int64) for t in train],
                 np.zeros(len(train), dtype=np.int64), np.ones(len(train), dtype=np.int64))


def fingerprint(tmp_path: Path, split: Split, text: str = "u,i\n") -> dict:
    log = tmp_path / "events.csv"
    log.write_text(text)
    return data_fingerprint(log, split)


def trained_folder(tmp_path: Path, data: dict, models=("ease", "sasrec"), item_ids=None, arch=ARCH) -> Path:
    """A retriever folder as a finished run leaves it: summary, hybrid weights, a SASRec model."""
    folder = tmp_path / "retriever"
    (folder / "sasrec").mkdir(parents=True)
    (folder / SUMMARY_FILE).write_text(json.dumps({"data": data, "models": list(models)}))
    (folder / "hybrid.json").write_text(json.dumps({"weights": {"ease": 1.0}}))
    (folder / "sasrec" / "model.safetensors").write_bytes(b"weights")
    (folder / "sasrec" / "config.json").write_text(json.dumps(
        {"model": "SASRec", "config": arch, "item_ids": item_ids or [], "info": {"best_epoch": 7}}))
    return folder


def test_fingerprint_records_the_file_and_the_split(tmp_path):
    split = make([[2, 3], [3, 2, 4]], ["a", "b", "c", "d", "e"])
    data = fingerprint(tmp_path, split, "u,i\nx,y\n")
    assert data["bytes"] == 8 and data["file"].endswith("events.csv")
    # 5 training items + validation and test for each of the 2 users
    assert (data["users"], data["items"], data["interactions"]) == (2, 5, 9)
    assert data["items_sha256"] == items_digest(["a", "b", "c", "d", "e"])
    assert split_digest(make([[2, 3], [3, 2, 4]], list("abcde"))) == data["split_sha256"]
    assert split_digest(make([[3, 2], [3, 2, 4]], list("abcde"))) != data["split_sha256"]  # order matters


def test_same_data_and_models_is_unchanged_unless_forced(tmp_path):
    split = make([[2, 3], [3, 2, 4]], list("abcde"))
    data = fingerprint(tmp_path, split)
    folder = trained_folder(tmp_path, data, item_ids=list("abcde"))
    plan = plan_training(folder, data, ("ease", "sasrec"), ARCH)
    assert plan.action == "unchanged" and "9 interactions" in plan.message and "5 items" in plan.message
    forced = plan_training(folder, data, ("ease", "sasrec"), ARCH, force=True)
    assert (forced.action, forced.sasrec, forced.resume) == ("train", "scratch", False)
    # other models on the same data: trained, SASRec warm-starts from its own weights
    assert plan_training(folder, data, ("ease",), ARCH).action == "train"


def test_new_interactions_with_the_same_items_warm_start_sasrec(tmp_path):
    old = fingerprint(tmp_path, make([[2, 3], [3, 2, 4]], list("abcde")))
    folder = trained_folder(tmp_path, old, item_ids=list("abcde"))
    new = fingerprint(tmp_path, make([[2, 3, 4, 2], [3, 2, 4, 3, 2]], list("abcde")))  # 4 + 5 training + 2 x 2 held out = 13: 4 more than 9
    plan = plan_training(folder, new, ("ease", "sasrec"), ARCH)
    assert (plan.action, plan.sasrec, plan.warm_epoch, plan.resume) == ("train", "warm", 7, False)
    assert plan.message == "resumed SASRec from epoch 7: 4 new interactions, same 5 items; refitted EASE"


def test_changed_items_or_architecture_train_from_scratch(tmp_path):
    old = fingerprint(tmp_path, make([[2, 3], [3, 2, 4]], list("abcde")))
    folder = trained_folder(tmp_path, old, item_ids=list("abcde"))
    grown = fingerprint(tmp_path, make([[2, 3], [3, 2, 5]], list("abcdef")))
    plan = plan_training(folder, grown, ("ease", "sasrec"), ARCH)
    assert plan.sasrec == "scratch" and "items changed (5 before, 6 now)" in plan.message

    wider = SasrecConfig(hidden=32, n_blocks=1, max_len=10).model_dump()
    newer = fingerprint(tmp_path, make([[2, 3, 4], [3, 2, 4]], list("abcde")))
    assert "architecture" in plan_training(folder, newer, ("ease", "sasrec"), wider).message
    # training settings that are not architecture (learning rate) still allow a warm start
    assert plan_training(folder, newer, ("ease", "sasrec"), {**ARCH, "lr": 0.1}).sasrec == "warm"


def test_no_earlier_model_trains_from_scratch_and_fast_mode_skips_sasrec(tmp_path):
    data = fingerprint(tmp_path, make([[2, 3], [3, 2, 4]], list("abcde")))
    folder = tmp_path / "empty"
    assert plan_training(folder, data, ("ease", "sasrec"), ARCH).sasrec == "scratch"
    fast = plan_training(folder, data, ("ease",), ARCH)
    assert (fast.action, fast.sasrec) == ("train", None) and "EASE" in fast.message


def test_an_interrupted_run_on_the_same_data_is_continued(tmp_path):
    old = fingerprint(tmp_path, make([[2, 3], [3, 2, 4]], list("abcde")))
    folder = trained_folder(tmp_path, old, item_ids=list("abcde"))
    new = fingerprint(tmp_path, make([[2, 3, 4], [3, 2, 4]], list("abcde")))
    (folder / PENDING_FILE).write_text(json.dumps({"data": new, "models": ["ease", "sasrec"], "sasrec": "warm",
                                                   "warm_epoch": 7}))
    plan = plan_training(folder, new, ("ease", "sasrec"), ARCH)
    assert (plan.sasrec, plan.resume, plan.warm_epoch) == ("warm", True, 7) and "interrupted" in plan.message
    # a pending run on other data is not continued
    other = fingerprint(tmp_path, make([[2, 3, 4, 2], [3, 2, 4]], list("abcde")))
    assert not plan_training(folder, other, ("ease", "sasrec"), ARCH).resume


@pytest.mark.parametrize("models", [("sasrec",), ("ease", "bpr"), ()])
def test_model_choices_need_ease(models):
    with pytest.raises(InputError, match="ease"):
        check_models(models)
    assert check_models(("sasrec", "ease", "ease")) == ("ease", "sasrec")


def test_a_summary_from_before_fingerprints_counts_by_its_sizes_and_items(tmp_path):
    split = make([[2, 3], [3, 2, 4]], list("abcde"))
    data = fingerprint(tmp_path, split)
    folder = trained_folder(tmp_path, data, item_ids=list("abcde"))
    old_style = {"split": {"users": 2, "items": 5, "interactions": 9}, "sasrec": {"best_epoch": 7}}
    (folder / SUMMARY_FILE).write_text(json.dumps(old_style))
    assert plan_training(folder, data, ("ease", "sasrec"), ARCH).action == "unchanged"
    # an old summary of fewer interactions: the new ones warm-start SASRec
    (folder / SUMMARY_FILE).write_text(json.dumps({**old_style, "split": {**old_style["split"], "interactions": 7}}))
    plan = plan_training(folder, data, ("ease", "sasrec"), ARCH)
    assert plan.sasrec == "warm" and "2 new interactions" in plan.message
