"""EASE inference: scores are the binary history times B; files round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from agent.retrieval.ease import EaseModel, interaction_matrix, load_ease


def test_scores_and_round_trip_from_a_retriever_folder(tmp_path):
    B = np.array([[0.0, 0.5, 0.1], [0.5, 0.0, 0.2], [0.3, 0.4, 0.0]], dtype=np.float32)
    model = EaseModel(B=B, config={"l2": 1.0, "refit_on_val": False}, item_ids=["7", "8", "9"])
    np.testing.assert_allclose(model.scores([0, 2, 2]), B[0] + B[2])
    np.testing.assert_allclose(model.score_matrix([[0, 2], [1]]), interaction_matrix([[0, 2], [1]], 3) @ B)
    model.save(tmp_path / "ease")
    loaded = load_ease(tmp_path)  # the retriever folder: its ease/ is found
    assert loaded.config == model.config and loaded.item_ids == model.item_ids
    np.testing.assert_array_equal(loaded.B, B)
    with pytest.raises(FileNotFoundError, match="recsage train-retriever"):
        load_ease(tmp_path / "missing")
