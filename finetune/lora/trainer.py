"""LoRA fine-tuning of a causal LM on (prompt, answer) text pairs, resumable after SIGKILL.

The trainer knows nothing about reranking: a data file holds already formatted prompts and the
answers the model should produce, and the loss covers the answer tokens only (the prompt is
context, not something to imitate). That keeps one trainer for every prompt format.

Training on CPUs is slow (the README gives the measured rate), so a run must survive being
killed and continue over several sessions: every ``save_every``
optimizer steps the adapter weights, the optimizer moments and the torch RNG state go to
``out/checkpoint/`` (tensors only, loaded with ``weights_only=True``) with a JSON state beside
them; the data order of each epoch is a pure function of (seed, epoch), so a rerun with the same
config picks up at the same example with the same random state and ends where an uninterrupted run
would have.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.core.errors import InputError
from agent.core.io import sha256_file, write_json
from agent.core.progress import progress_bar
from agent.llm import ADAPTER_WEIGHTS, load_causal_lm
from finetune.lora.checkpoint import (
    CHECKPOINT,
    load_checkpoint,
    save_checkpoint,
    trainable_parameters,
)
from finetune.lora.config import LoraTrainConfig, resolve_base
from finetune.lora.data import collate, encode_pair, epoch_order, read_pairs, split_rows

ADAPTER = "adapter"
CARD = "training_card.json"
PLOT = "loss.png"
# settings that must not change when a run resumes (they change what a step means)
_RESUME_KEYS = (
    "base_model", "r", "alpha", "dropout", "target_modules", "lr", "batch_size", "grad_accum",
    "seed", "val_fraction", "max_val_examples", "max_length", "append_eos", "warmup_steps",
    "weight_decay", "qlora",
)


# --- model --------------------------------------------------------------------------------------


def _peft_wrap(model, config: LoraTrainConfig):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(config.seed)
    lora = LoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
        target_modules=config.target_modules, task_type="CAUSAL_LM", bias="none",
    )
    return get_peft_model(model, lora)


# --- training -----------------------------------------------------------------------------------


def _autocast(device: str, enabled: bool):
    import torch

    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=enabled)


def _val_loss(model, encoded: list[dict], batch_size: int, pad_id: int, device: str, bf16: bool) -> float:
    """Mean loss per answer token over the held-out rows."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            ids, mask, labels = collate(encoded[start:start + batch_size], pad_id)
            with _autocast(device, bf16):
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logits = logits[:, :-1].float()
            target = labels[:, 1:].to(device)
            total += float(torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="sum"))
            tokens += int((target != -100).sum())
    model.train()
    return total / max(tokens, 1)


def _resume(out: Path, model, optimizer, settings: dict, data_sha: str) -> dict:
    """The run's state: from the checkpoint in ``out`` (weights, optimizer and RNG restored) when
    it was made with the same settings and data, else fresh; one more session either way."""
    state = {"step": 0, "loss_curve": [], "val_losses": [], "seconds": 0.0, "examples_seen": 0,
             "sessions": 0}
    resumed = load_checkpoint(out, model, optimizer)
    if resumed is not None:
        before = resumed.get("settings", {})
        changed = [k for k in _RESUME_KEYS if before.get(k) != settings.get(k)]
        if resumed.get("data_sha256") != data_sha:
            changed.append("data (file contents)")
        if changed:
            raise InputError(
                f"{out / CHECKPOINT} was made with different settings ({', '.join(changed)}); "
                "resume with the same config, or use a new output_dir (or delete the checkpoint) to start over"
            )
        state = {k: resumed[k] for k in state}
    state["sessions"] += 1
    return state


def _optimizer_step(model, optimizer, rows: list[dict], config: LoraTrainConfig, step: int, pad_id: int,
                    device: str) -> float:
    """One optimizer step over ``rows`` in micro-batches of ``batch_size`` (gradients accumulated,
    each weighted by its share of the rows), learning rate warmed up linearly; returns the loss."""
    lr = config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    for start in range(0, len(rows), config.batch_size):
        part = rows[start:start + config.batch_size]
        ids, mask, labels = collate(part, pad_id)
        with _autocast(device, config.bf16):
            out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
        loss = out.loss.float() * (len(part) / len(rows))
        loss.backward()
        step_loss += float(loss.detach())
    optimizer.step()
    return step_loss


def _token_stats(encoded: list[dict]) -> dict:
    return {"truncated_rows": sum(1 for e in encoded if e["truncated"]),
            "mean_tokens": sum(len(e["input_ids"]) for e in encoded) / len(encoded),
            "mean_answer_tokens": sum(sum(1 for t in e["labels"] if t != -100) for e in encoded) / len(encoded)}


@dataclass
class _Run:
    """Everything one training session reads and writes: the model and its optimizer, the encoded
    data, the step plan and ``state``, the resumable part that goes into every checkpoint."""

    config: LoraTrainConfig
    base: str
    settings: dict
    out: Path
    device: str
    rows: list[dict]
    data_sha: str
    encoded: list[dict]
    train_enc: list[dict]
    val_enc: list[dict]
    model: Any
    tokenizer: Any
    pad_id: int
    params: list
    optimizer: Any
    per_step: int
    steps_per_epoch: int
    total_steps: int
    state: dict

    def snapshot(self) -> dict:
        return {**self.state, "settings": self.settings, "data_sha256": self.data_sha}


def _start(config: LoraTrainConfig) -> _Run:
    """Load the data and the model, wrap it in LoRA and resume the run state from ``output_dir``."""
    import torch

    base = resolve_base(config.base_model)
    if config.qlora and not torch.cuda.is_available():
        raise InputError(
            "QLoRA needs a CUDA GPU (bitsandbytes 4-bit); none is available here: drop --qlora "
            "(or qlora = true in the config) to train LoRA on the CPU"
        )
    settings = {**config.model_dump(), "base_model": base}
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    rows = read_pairs(Path(config.data))
    data_sha = sha256_file(Path(config.data))
    train_idx, val_idx = split_rows(len(rows), config.val_fraction, config.max_val_examples, config.seed)
    model, tokenizer = load_causal_lm(base, "fp32", trainable=True, quantize_4bit=config.qlora)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    encoded = [encode_pair(tokenizer, r["prompt"], r["answer"], config.max_length, config.append_eos)
               for r in rows]
    train_enc = [encoded[i] for i in train_idx]
    val_enc = [encoded[i] for i in val_idx]

    model = _peft_wrap(model, config)
    model.train()
    params = list(trainable_parameters(model).values())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    per_step = config.batch_size * config.grad_accum
    steps_per_epoch = math.ceil(len(train_enc) / per_step)
    total_steps = config.max_steps or config.epochs * steps_per_epoch
    state = _resume(out, model, optimizer, settings, data_sha)
    return _Run(config, base, settings, out, device, rows, data_sha, encoded, train_enc, val_enc, model,
                tokenizer, pad_id, params, optimizer, per_step, steps_per_epoch, total_steps, state)


def _step_loop(run: _Run, advance: Callable[..., None], on_step: Callable[[int, float], None] | None) -> str | None:
    """Optimizer steps until ``total_steps`` or ``max_minutes``; returns why it stopped early, or None.

    Kept whole on purpose: the step, its validation, its checkpoint and ``on_step`` happen in this
    order, and that order is what makes a kill between any two of them resumable."""
    config, state = run.config, run.state
    started = time.perf_counter()
    session_start_seconds = state["seconds"]
    stopped = None
    last_ckpt = state["step"]
    while state["step"] < run.total_steps:
        step = state["step"]
        epoch, in_epoch = divmod(step, run.steps_per_epoch)
        order = epoch_order(len(run.train_enc), config.seed, epoch)
        chunk = order[in_epoch * run.per_step:(in_epoch + 1) * run.per_step]
        step_loss = _optimizer_step(run.model, run.optimizer, [run.train_enc[i] for i in chunk], config, step,
                                    run.pad_id, run.device)
        state["step"] = step + 1
        state["examples_seen"] += len(chunk)
        state["loss_curve"].append([state["step"], step_loss])
        state["seconds"] = session_start_seconds + time.perf_counter() - started
        advance(1, loss=f"{step_loss:.4f}", epoch=epoch)
        done = state["step"] >= run.total_steps
        if run.val_enc and ((config.eval_every and state["step"] % config.eval_every == 0) or done):
            vl = _val_loss(run.model, run.val_enc, config.batch_size, run.pad_id, run.device, config.bf16)
            state["val_losses"].append([state["step"], vl])
            advance(0, loss=f"{step_loss:.4f}", val=f"{vl:.4f}", epoch=epoch)
        timed_out = config.max_minutes and (time.perf_counter() - started) / 60 >= config.max_minutes
        if (config.save_every and state["step"] % config.save_every == 0) or done or timed_out:
            state["seconds"] = session_start_seconds + time.perf_counter() - started
            save_checkpoint(run.out, run.model, run.optimizer, run.snapshot())
            last_ckpt = state["step"]
        if on_step is not None:
            on_step(state["step"], step_loss)
        if timed_out and not done:
            stopped = f"max_minutes ({config.max_minutes}) reached at step {state['step']}; rerun to continue"
            break
    if last_ckpt != state["step"]:
        save_checkpoint(run.out, run.model, run.optimizer, run.snapshot())
    return stopped


def _card(run: _Run, stopped: str | None) -> dict:
    import torch

    state, config = run.state, run.config
    seconds = state["seconds"]
    return {
        "settings": run.settings,
        "base_model": run.base,
        "data": {"path": str(config.data), "sha256": run.data_sha, "rows": len(run.rows),
                 "train_examples": len(run.train_enc), "val_examples": len(run.val_enc),
                 **_token_stats(run.encoded)},
        "complete": stopped is None and state["step"] >= run.total_steps,
        "stopped": stopped,
        "steps": state["step"],
        "total_steps": run.total_steps,
        "steps_per_epoch": run.steps_per_epoch,
        "examples_seen": state["examples_seen"],
        "seconds": round(seconds, 2),
        "examples_per_s": round(state["examples_seen"] / seconds, 4) if seconds > 0 else None,
        "sessions": state["sessions"],
        "device": run.device,
        "autocast_bf16": bool(config.bf16),
        "trainable_parameters": sum(p.numel() for p in run.params),
        "loss_curve": state["loss_curve"],
        "val_losses": state["val_losses"],
        "final_val_loss": state["val_losses"][-1][1] if state["val_losses"] else None,
        "torch": torch.__version__,
        "adapter": str(run.out / ADAPTER),
    }


def train_lora(
    config: LoraTrainConfig,
    progress: bool = True,
    *,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Train (or resume) a LoRA adapter; returns the training card.

    ``on_step(step, loss)`` runs after every optimizer step and after any checkpoint of that step
    (tests use it to simulate a kill; the CLI may use it for logging).
    """
    import torch

    run = _start(config)
    with progress_bar("lora", run.total_steps, initial=run.state["step"], enabled=progress,
                      plain_line=lambda done, of: f"lora: step {done}/{of}") as advance:
        stopped = _step_loop(run, advance, on_step)

    out = run.out
    run.model.save_pretrained(str(out / ADAPTER), safe_serialization=True)
    run.tokenizer.save_pretrained(str(out / ADAPTER))
    if config.adapter_dtype == "bf16":
        _cast_adapter(out / ADAPTER, torch.bfloat16)
    card = _card(run, stopped)
    write_json(out / CARD, card)
    plot_losses(card, out / PLOT)
    if config.export_dir and card["complete"]:
        card["exported_to"] = str(export_adapter(out, Path(config.export_dir)))
    return card


def _cast_adapter(adapter_dir: Path, dtype) -> None:
    """Rewrite the saved adapter weights in ``dtype`` (peft casts them back to the model's on load)."""
    from safetensors.torch import load_file, save_file

    path = adapter_dir / ADAPTER_WEIGHTS
    weights = {k: v.to(dtype) for k, v in load_file(str(path)).items()}
    save_file(weights, str(path), metadata={"format": "pt"})


def export_adapter(out: Path, dest: Path) -> Path:
    """Copy what loading needs (weights, adapter config) plus the training card to ``dest``; the
    tokenizer stays behind (it is the base model's)."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    for name in (ADAPTER_WEIGHTS, "adapter_config.json"):
        shutil.copy2(out / ADAPTER / name, dest / name)
    shutil.copy2(out / CARD, dest / CARD)
    return dest


def plot_losses(card: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if card["loss_curve"]:
        xs, ys = zip(*card["loss_curve"])
        ax.plot(xs, ys, label="train loss (per step)", lw=1)
    if card["val_losses"]:
        xs, ys = zip(*card["val_losses"])
        ax.plot(xs, ys, "o-", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss per answer token")
    ax.set_title(f"LoRA r={card['settings']['r']} on {Path(card['base_model']).name}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
