"""LoRA fine-tuning of a causal LM on (prompt, answer) text pairs, resumable after SIGKILL.

The trainer knows nothing about reranking: a data file holds already formatted prompts and the
answers the model should produce, and the loss covers the answer tokens only (the prompt is
context, not something to imitate). That keeps one trainer for every prompt format.

Training on these CPUs is slow (about 0.5 examples/s for ~400-token prompts with a 135M model),
so a run must survive being killed and continue over several sessions: every ``save_every``
optimizer steps the adapter weights, the optimizer moments and the torch RNG state go to
``out/checkpoint/`` (tensors only, loaded with ``weights_only=True``) with a JSON state beside
them; the data order of each epoch is a pure function of (seed, epoch), so a rerun with the same
config picks up at the same example with the same random state and ends where an uninterrupted run
would have.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from agent.core.errors import InputError
from finetune.lora.checkpoint import (
    CHECKPOINT,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
    trainable_parameters,
)
from finetune.lora.config import (
    LoraTrainConfig,
    config_from_dict,
    config_help,
    load_config,
    validate_config,
)
from finetune.lora.data import collate, encode_pair, epoch_order, read_pairs, split_rows

__all__ = [  # the trainer's public face; config and data helpers live in lora_config / lora_data
    "LoraTrainConfig", "collate", "config_from_dict", "config_help", "encode_pair", "epoch_order",
    "export_adapter", "load_config", "merge_adapter", "read_pairs", "split_rows", "train_lora",
    "validate_config",
]

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


def resolve_base(base_model: str | Path | None) -> str:
    if base_model:
        return str(base_model)
    from agent.core.config import load_settings
    from agent.provision.models import model_path

    return str(model_path(load_settings(), "llm"))


def _load_base(base: str, qlora: bool):
    import torch

    from agent.core.errors import require

    transformers = require("transformers")
    if qlora:
        if not torch.cuda.is_available():
            raise InputError(
                "QLoRA needs a CUDA GPU (bitsandbytes 4-bit); none is available here: drop --qlora "
                "(or qlora = true in the config) to train LoRA on the CPU"
            )
        require("bitsandbytes", extra="qlora")
        from peft import prepare_model_for_kbit_training

        quant = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            base, quantization_config=quant, device_map={"": 0}
        )
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        if torch.cuda.is_available():
            model = model.to("cuda")
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    return model, tokenizer


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

    validate_config(config)
    base = resolve_base(config.base_model)
    if config.qlora and not torch.cuda.is_available():
        raise InputError(
            "QLoRA needs a CUDA GPU (bitsandbytes 4-bit); none is available here: drop --qlora "
            "(or qlora = true in the config) to train LoRA on the CPU"
        )
    settings = {**asdict(config), "base_model": base}
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    rows = read_pairs(Path(config.data))
    data_sha = file_sha256(Path(config.data))
    train_idx, val_idx = split_rows(len(rows), config.val_fraction, config.max_val_examples, config.seed)
    model, tokenizer = _load_base(base, config.qlora)
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
    bf16 = config.bf16

    def snapshot() -> dict:
        return {**state, "settings": settings, "data_sha256": data_sha}

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=state["step"], desc="lora", unit="step", dynamic_ncols=True)
    started = time.perf_counter()
    session_start_seconds = state["seconds"]
    stopped = None
    last_ckpt = state["step"]
    while state["step"] < total_steps:
        step = state["step"]
        epoch, in_epoch = divmod(step, steps_per_epoch)
        order = epoch_order(len(train_enc), config.seed, epoch)
        chunk = order[in_epoch * per_step:(in_epoch + 1) * per_step]
        lr = config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        micro = [chunk[i:i + config.batch_size] for i in range(0, len(chunk), config.batch_size)]
        step_loss = 0.0
        for part in micro:
            ids, mask, labels = collate([train_enc[i] for i in part], pad_id)
            with _autocast(device, bf16):
                out_ = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
            loss = out_.loss.float() * (len(part) / len(chunk))
            loss.backward()
            step_loss += float(loss.detach())
        optimizer.step()
        state["step"] = step + 1
        state["examples_seen"] += len(chunk)
        state["loss_curve"].append([state["step"], step_loss])
        state["seconds"] = session_start_seconds + time.perf_counter() - started
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}", epoch=epoch)
        done = state["step"] >= total_steps
        if val_enc and ((config.eval_every and state["step"] % config.eval_every == 0) or done):
            vl = _val_loss(model, val_enc, config.batch_size, pad_id, device, bf16)
            state["val_losses"].append([state["step"], vl])
            if bar is not None:
                bar.set_postfix(loss=f"{step_loss:.4f}", val=f"{vl:.4f}", epoch=epoch)
        timed_out = config.max_minutes and (time.perf_counter() - started) / 60 >= config.max_minutes
        if (config.save_every and state["step"] % config.save_every == 0) or done or timed_out:
            state["seconds"] = session_start_seconds + time.perf_counter() - started
            save_checkpoint(out, model, optimizer, snapshot())
            last_ckpt = state["step"]
        if on_step is not None:
            on_step(state["step"], step_loss)
        if timed_out and not done:
            stopped = f"max_minutes ({config.max_minutes}) reached at step {state['step']}; rerun to continue"
            break
    if bar is not None:
        bar.close()
    if last_ckpt != state["step"]:
        save_checkpoint(out, model, optimizer, snapshot())

    model.save_pretrained(str(out / ADAPTER), safe_serialization=True)
    tokenizer.save_pretrained(str(out / ADAPTER))
    if config.adapter_dtype == "bf16":
        _cast_adapter(out / ADAPTER, torch.bfloat16)
    seconds = state["seconds"]
    card = {
        "settings": settings,
        "base_model": base,
        "data": {"path": str(config.data), "sha256": data_sha, "rows": len(rows),
                 "train_examples": len(train_enc), "val_examples": len(val_enc),
                 "truncated_rows": sum(1 for e in encoded if e["truncated"]),
                 "mean_tokens": sum(len(e["input_ids"]) for e in encoded) / len(encoded),
                 "mean_answer_tokens": sum(sum(1 for t in e["labels"] if t != -100) for e in encoded) / len(encoded)},
        "complete": stopped is None and state["step"] >= total_steps,
        "stopped": stopped,
        "steps": state["step"],
        "total_steps": total_steps,
        "steps_per_epoch": steps_per_epoch,
        "examples_seen": state["examples_seen"],
        "seconds": round(seconds, 2),
        "examples_per_s": round(state["examples_seen"] / seconds, 4) if seconds > 0 else None,
        "sessions": state["sessions"],
        "device": device,
        "autocast_bf16": bool(bf16),
        "trainable_parameters": sum(p.numel() for p in params),
        "loss_curve": state["loss_curve"],
        "val_losses": state["val_losses"],
        "final_val_loss": state["val_losses"][-1][1] if state["val_losses"] else None,
        "torch": torch.__version__,
        "adapter": str(out / ADAPTER),
    }
    (out / CARD).write_text(json.dumps(card, indent=1), encoding="utf-8")
    plot_losses(card, out / PLOT)
    if config.export_dir and card["complete"]:
        card["exported_to"] = str(export_adapter(out, Path(config.export_dir)))
    return card


ADAPTER_WEIGHTS = "adapter_model.safetensors"


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


def merge_adapter(base: str | Path | None, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Fold the adapter into the base weights: a plain model folder any loader can read, no peft."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise InputError(f"{adapter_dir} has no adapter_config.json: give the adapter/ folder a training run wrote")
    if not base:
        recorded = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
        base = recorded if recorded and Path(recorded).exists() else resolve_base(None)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer_src = adapter_dir if (adapter_dir / "tokenizer_config.json").exists() else base
    AutoTokenizer.from_pretrained(str(tokenizer_src)).save_pretrained(str(out_dir))
    return out_dir
