"""Optimizer state as flat named tensors, so checkpoints need no pickle.

``torch.optim`` state dicts nest per-parameter slots (``exp_avg``, ``step``, ...) under parameter
indices. Flattened to ``{prefix}{index}.{slot}`` tensors they go into safetensors or a
``weights_only=True`` torch file; the parameter groups (plain numbers) travel as JSON or are taken
from the freshly built optimizer. Both trainers (LoRA, SASRec) checkpoint through these two.
"""

from __future__ import annotations


def optimizer_tensors(optimizer, prefix: str) -> dict:
    """``{prefix}{param index}.{slot}`` -> tensor for every slot of the optimizer's state."""
    import torch

    tensors = {}
    for index, slots in optimizer.state_dict()["state"].items():
        for name, value in slots.items():
            tensors[f"{prefix}{index}.{name}"] = (
                value.detach().contiguous().clone() if torch.is_tensor(value) else torch.tensor(value)
            )
    return tensors


def restore_optimizer(optimizer, tensors: dict, param_groups: list, prefix: str) -> None:
    """Load the slots :func:`optimizer_tensors` wrote (other keys in ``tensors`` are ignored)."""
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, name = key[len(prefix):].split(".", 1)
            slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": param_groups})
