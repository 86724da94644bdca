"""SASRec inference: the architecture read from a saved training config, loading, scoring."""

from __future__ import annotations

import numpy as np
import pytest

from agent.retrieval.sasrec import (
    SasrecArchitecture,
    SasrecModel,
    build_network,
    load_sasrec,
)

ARCH = SasrecArchitecture(hidden=8, n_blocks=1, max_len=5)


def test_loaders_say_what_to_do_when_nothing_was_trained(tmp_path):
    with pytest.raises(FileNotFoundError, match="recsage train-retriever"):
        load_sasrec(tmp_path)


def test_architecture_reads_only_its_fields_from_a_training_config():
    saved = {**ARCH.model_dump(), "loss": "ce", "epochs": 100, "lr": 0.002, "seed": 3}
    assert SasrecArchitecture.from_saved(saved) == ARCH
    with pytest.raises(ValueError, match="n_heads"):
        SasrecArchitecture(hidden=10, n_heads=3)


def test_save_and_load_from_a_retriever_folder_give_identical_scores(tmp_path):
    import torch

    torch.manual_seed(0)
    model = SasrecModel(build_network(6, ARCH), ARCH, 6, [str(i) for i in range(6)], {"best_epoch": 1})
    model.save(tmp_path / "sasrec")
    loaded = load_sasrec(tmp_path)  # the retriever folder: its sasrec/ is found
    assert loaded.config == ARCH and loaded.info == {"best_epoch": 1} and loaded.dim == 9
    histories = [np.array([0, 1, 2]), np.array([5]), np.array([], dtype=np.int64)]
    np.testing.assert_array_equal(loaded.score_matrix(histories), model.score_matrix(histories))
    np.testing.assert_array_equal(loaded.scores([3, 4]), loaded.item_vectors() @ loaded.user_vector([3, 4]))
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*"))
