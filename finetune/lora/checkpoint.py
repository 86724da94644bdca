"""Checkpoints of a LoRA run that survive SIGKILL: written aside, then swapped in.

Adapter weights (safetensors), optimizer moments and RNG state (tensors only, read back with
``weights_only=True``) and a JSON state go to ``out/checkpoint/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from agent.core.errors import InputError
from agent.core.io import read_json, write_json
from finetune.checkpoint import optimizer_tensors, restore_optimizer

CHECKPOINT = "checkpoint"
OPTIMIZER_PREFIX = "opt."  # key prefix of optimizer slots in trainer_state.pt (existing checkpoints use it)


def trainable_parameters(model) -> dict[str, Any]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(out: Path, model, optimizer, state: dict) -> None:
    """Write checkpoint.tmp/ fully, then swap it in, so a kill never leaves a half checkpoint."""
    import torch
    from safetensors.torch import save_file

    tmp, final, old = out / (CHECKPOINT + ".tmp"), out / CHECKPOINT, out / (CHECKPOINT + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: p.detach().contiguous().cpu() for n, p in trainable_parameters(model).items()},
              str(tmp / "adapter.safetensors"))
    tensors: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda_rng"] = torch.cuda.get_rng_state()
    tensors.update(optimizer_tensors(optimizer, OPTIMIZER_PREFIX))
    torch.save(tensors, tmp / "trainer_state.pt")
    write_json(tmp / "state.json", state)
    for f in tmp.iterdir():  # make the files durable before the swap
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _checkpoint_dir(out: Path) -> Path | None:
    for name in (CHECKPOINT, CHECKPOINT + ".old"):  # .old survives a kill between the two renames
        if (out / name / "state.json").is_file():
            return out / name
    return None


def load_checkpoint(out: Path, model, optimizer) -> dict | None:
    import torch
    from safetensors.torch import load_file

    folder = _checkpoint_dir(out)
    if folder is None:
        return None
    state = read_json(folder / "state.json")
    weights = load_file(str(folder / "adapter.safetensors"))
    params = trainable_parameters(model)
    if set(weights) != set(params):
        raise InputError(f"checkpoint in {folder} does not match this model's adapter; "
                         "use a new output_dir or delete the checkpoint")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name].to(p.device, p.dtype))
    tensors = torch.load(folder / "trainer_state.pt", weights_only=True)
    restore_optimizer(optimizer, tensors, optimizer.state_dict()["param_groups"], OPTIMIZER_PREFIX)
    torch.set_rng_state(tensors["torch_rng"])
    if "cuda_rng" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda_rng"])
    return state
