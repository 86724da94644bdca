"""EASE inference (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

A linear item-item model: a user's score for every item is x_u @ B, with x_u the user's binary
history row and B (n_items x n_items, zero diagonal) fitted in closed form by
finetune.retriever.ease. This module holds the fitted model, its files and its scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.core.io import read_json, write_json
from agent.retrieval.artifacts import model_folder

MODEL_DIR = "ease"  # the model's folder inside a retriever folder
WEIGHTS_FILE = "ease.safetensors"
CONFIG_FILE = "ease.json"


@dataclass
class EaseModel:
    """A fitted EASE model: B[i, j] is how much having seen item i raises item j's score."""

    B: np.ndarray  # (n_items, n_items) float32, zero diagonal
    config: dict[str, Any]  # the training config it was fitted with (scoring needs none of it)
    item_ids: list[str] = field(default_factory=list)  # dense item -> original movieId (optional)

    @property
    def n_items(self) -> int:
        return self.B.shape[0]

    def scores(self, history_item_indices: Iterable[int] | np.ndarray) -> np.ndarray:
        """Score of every item for a user who has seen ``history_item_indices`` (dense ids).

        EASE treats the history as a binary set, so order and repeats are ignored: the score is
        x_u @ B with x_u the user's 0/1 row. Seen items are not masked here; the protocol masks.
        """
        history = np.unique(np.fromiter(history_item_indices, dtype=np.int64))
        if history.size and (history.min() < 0 or history.max() >= self.n_items):
            raise ValueError(f"history item ids must lie in 0..{self.n_items - 1}")
        return self.B[history].sum(axis=0, dtype=np.float64).astype(np.float32)

    def score_matrix(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of many users at once, (n_users, n_items): the binary history matrix times B."""
        return (interaction_matrix(histories, self.n_items) @ self.B).astype(np.float32)

    def save(self, directory: Path) -> Path:
        """Write B as safetensors and the config (+ item ids) as JSON; no pickle anywhere."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"B": np.ascontiguousarray(self.B, dtype=np.float32)}, str(directory / WEIGHTS_FILE))
        write_json(directory / CONFIG_FILE, {"model": "EASE", "config": dict(self.config),
                                             "n_items": self.n_items, "item_ids": list(self.item_ids)})
        return directory


def load_ease(directory: Path) -> EaseModel:
    """Load a model written by ``EaseModel.save``, from a retriever folder (its ease/) or the model folder."""
    from safetensors.numpy import load_file

    directory = model_folder(directory, MODEL_DIR, (CONFIG_FILE, WEIGHTS_FILE))
    meta = read_json(directory / CONFIG_FILE)
    B = load_file(str(directory / WEIGHTS_FILE))["B"]
    if B.shape != (meta["n_items"], meta["n_items"]):
        raise ValueError(f"{directory / WEIGHTS_FILE}: B has shape {B.shape}, config says {meta['n_items']} items")
    return EaseModel(B=B, config=meta["config"], item_ids=meta.get("item_ids", []))


def interaction_matrix(histories: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Binary user x item matrix (float64) from per-user item lists; repeats count once."""
    X = np.zeros((len(histories), n_items), dtype=np.float64)
    for row, items in enumerate(histories):
        X[row, np.asarray(items, dtype=np.int64)] = 1.0
    return X
