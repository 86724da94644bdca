"""Train the image tower: InfoNCE between image vectors and frozen card vectors, resumable.

Every random choice is a function of (seed, step): the batch is a slice of the epoch's seeded
permutation, the augmentation draws from a generator seeded by the step. A checkpoint therefore
needs only the weights, the optimizer state and the step, and a resumed run takes exactly the
steps an uninterrupted one would (a test holds the two equal).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from agent.core.errors import InputError
from agent.core.io import read_json, write_json
from agent.core.progress import progress_bar
from agent.ingest.image_encoder import (
    build_tower,
    pixels_to_tensor,
    save_encoder,
    tower_spec,
)
from finetune.checkpoint import optimizer_tensors, restore_optimizer
from finetune.image_encoder.config import ImageEncoderConfig
from finetune.image_encoder.data import ImageData

CHECKPOINT_DIR = "checkpoint"
STATE_WEIGHTS = "state.safetensors"
STATE_FILE = "state.json"
ENCODER_DIR = "encoder"
MAX_LOGIT_SCALE = 100.0  # temperature never below 0.01, as in CLIP


def make_tower(config: ImageEncoderConfig, embed_dim: int, text_embedder: str):
    import torch

    spec = tower_spec(height=config.height, width=config.width, embed_dim=embed_dim, layers=config.layers,
                      tower_width=config.tower_width, patch_size=config.patch_size, text_embedder=text_embedder)
    torch.manual_seed(config.seed)
    tower = build_tower(spec)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))
    return spec, tower, logit_scale


def make_optimizer(config: ImageEncoderConfig, tower, logit_scale):
    import torch

    decay, plain = [], []
    for name, param in tower.named_parameters():
        # norms, biases, class token and position embeddings are not decayed (as in open_clip's training)
        (plain if param.ndim < 2 or "embedding" in name or "token" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": plain + [logit_scale], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def learning_rate(config: ImageEncoderConfig, step: int) -> float:
    """Linear warmup to ``lr``, then cosine decay to 0 at ``steps``."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * min(1.0, progress)))


def batch_indices(n_train: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """The ``step``-th batch: consecutive slices of one seeded permutation per epoch."""
    size = min(batch_size, n_train)
    per_epoch = n_train // size
    epoch, slot = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n_train)
    return order[slot * size:(slot + 1) * size]


def augment(x, generator):
    """Random shifts (pad 4, crop back), horizontal flips and brightness/contrast jitter, per image."""
    import torch

    n, _, height, width = x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="replicate")
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    out = torch.stack([padded[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width] for i in range(n)])
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    gain = 1.0 + 0.2 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    shift = 0.2 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    return out * gain + shift


def info_nce(image_vectors, card_vectors, logit_scale):
    """Symmetric InfoNCE: each image against every card of the batch, and each card against every image."""
    import torch

    image_vectors = torch.nn.functional.normalize(image_vectors, dim=-1)
    logits = logit_scale.exp().clamp(max=MAX_LOGIT_SCALE) * image_vectors @ card_vectors.T
    target = torch.arange(len(logits))
    return 0.5 * (torch.nn.functional.cross_entropy(logits, target)
                  + torch.nn.functional.cross_entropy(logits.T, target))


def train_step(state: dict, data: ImageData, train_idx: np.ndarray, config: ImageEncoderConfig, step: int) -> float:
    import torch

    tower, logit_scale, optimizer = state["tower"], state["logit_scale"], state["optimizer"]
    chosen = train_idx[batch_indices(len(train_idx), config.batch_size, config.seed, step)]
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    images = augment(pixels_to_tensor(data.pixels[chosen]), generator)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(config, step)
    tower.train()
    loss = info_nce(tower(images), torch.from_numpy(data.vectors[chosen]), logit_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


# --- checkpoints ---------------------------------------------------------------------------------


def save_checkpoint(folder: Path, state: dict, step: int, meta: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"tower.{k}": v.detach().contiguous().clone() for k, v in state["tower"].state_dict().items()}
    tensors["logit_scale"] = state["logit_scale"].detach().clone()
    tensors.update(optimizer_tensors(state["optimizer"], "opt."))
    tmp = folder / (STATE_WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / STATE_WEIGHTS)
    groups = state["optimizer"].state_dict()["param_groups"]  # plain numbers, params as global indices
    write_json(folder / STATE_FILE, {**meta, "step": step, "param_groups": groups})


def load_checkpoint(folder: Path, state: dict, meta: dict) -> int:
    """The step to continue from: 0 without a checkpoint; InputError if it was made for other data."""
    import torch
    from safetensors.torch import load_file

    if not (folder / STATE_FILE).is_file() or not (folder / STATE_WEIGHTS).is_file():
        return 0
    saved = read_json(folder / STATE_FILE)
    for key in ("architecture", "data", "seed", "batch_size"):
        if saved.get(key) != meta[key]:
            raise InputError(f"the checkpoint in {folder} was made with another {key}: pass --fresh to start over, "
                             "or use another --run-dir")
    tensors = load_file(str(folder / STATE_WEIGHTS))
    state["tower"].load_state_dict({k[len("tower."):]: v for k, v in tensors.items() if k.startswith("tower.")})
    with torch.no_grad():
        state["logit_scale"].copy_(tensors["logit_scale"])
    restore_optimizer(state["optimizer"], tensors, saved["param_groups"], "opt.")
    return int(saved["step"])


# --- the run -------------------------------------------------------------------------------------


def train(data: ImageData, config: ImageEncoderConfig, run_dir: Path, *, text_embedder: str = "",
          max_minutes: float = 0.0, progress: bool = True) -> dict:
    """Train (or continue) in ``run_dir``; the finished encoder goes to ``run_dir/encoder``."""
    import torch

    torch.set_num_threads(config.threads)
    spec, tower, logit_scale = make_tower(config, data.vectors.shape[1], text_embedder)
    state = {"tower": tower, "logit_scale": logit_scale, "optimizer": make_optimizer(config, tower, logit_scale)}
    meta = {"architecture": config.architecture(), "data": data.digest(), "seed": config.seed,
            "batch_size": config.batch_size}
    folder = Path(run_dir) / CHECKPOINT_DIR
    start = load_checkpoint(folder, state, meta)
    train_idx = np.flatnonzero(~data.heldout)
    began, losses, step = time.monotonic(), [], start
    with progress_bar("train image encoder", config.steps, initial=start, enabled=progress,
                      plain_line=lambda d, n: f"image encoder: step {d}/{n}") as advance:
        while step < config.steps:
            losses.append(train_step(state, data, train_idx, config, step))
            step += 1
            advance(1, loss=f"{np.mean(losses[-20:]):.3f}")
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint(folder, state, step, meta)
            if max_minutes and time.monotonic() - began > max_minutes * 60 and step < config.steps:
                save_checkpoint(folder, state, step, meta)
                break
    info = {"steps": step, "resumed_from": start, "complete": step >= config.steps,
            "train_items": len(train_idx), "heldout_items": int(data.heldout.sum()),
            "final_loss": round(float(np.mean(losses[-20:])), 4) if losses else None,
            "temperature": round(float(1.0 / logit_scale.detach().exp().clamp(max=MAX_LOGIT_SCALE)), 4),
            "seconds": round(time.monotonic() - began, 1), "config": config.model_dump()}
    if info["complete"]:
        save_encoder(Path(run_dir) / ENCODER_DIR, tower, spec, info)
    return info
