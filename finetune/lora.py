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

import hashlib
import json
import math
import os
import shutil
import time
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from agent.errors import InputError
from agent.jsonl import iter_json_objects

CHECKPOINT = "checkpoint"
ADAPTER = "adapter"
CARD = "training_card.json"
PLOT = "loss.png"
# settings that must not change when a run resumes (they change what a step means)
_RESUME_KEYS = (
    "base_model", "r", "alpha", "dropout", "target_modules", "lr", "batch_size", "grad_accum",
    "seed", "val_fraction", "max_val_examples", "max_length", "append_eos", "warmup_steps",
    "weight_decay", "qlora",
)


@dataclass
class LoraTrainConfig:
    """Settings of one LoRA run; a TOML file maps onto it key by key (see finetune/configs/)."""

    data: str = field(default="", metadata={"help": (
        "JSONL file of {\"prompt\": str, \"answer\": str} rows. The prompt is already formatted "
        "(chat template included if wanted); loss is taken on the answer tokens only.")})
    output_dir: str = field(default="", metadata={"help": (
        "Folder for checkpoint/, adapter/, training_card.json and loss.png. Rerunning with the "
        "same folder resumes from its checkpoint.")})
    base_model: str = field(default="", metadata={"help": (
        "Base causal LM: a local folder or hub id. Empty: the provisioned LLM role "
        "(`recsage models pull`).")})
    r: int = field(default=16, metadata={"help": "LoRA rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (the update is scaled by alpha / r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input, in [0, 1)."})
    target_modules: str | list[str] = field(default="all-linear", metadata={"help": (
        "Modules that get adapters: 'all-linear' or a list of module names such as "
        "[\"q_proj\", \"v_proj\"].")})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (constant after warmup)."})
    warmup_steps: int = field(default=0, metadata={"help": "Linear learning-rate warmup, in optimizer steps."})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on the adapter weights."})
    epochs: int = field(default=1, metadata={"help": "Passes over the training rows (used when max_steps is 0)."})
    max_steps: int = field(default=0, metadata={"help": (
        "Optimizer steps to train in total; 0 = epochs x steps per epoch. Raising it and rerunning "
        "continues a finished run.")})
    batch_size: int = field(default=4, metadata={"help": "Rows per forward pass."})
    grad_accum: int = field(default=1, metadata={"help": (
        "Forward passes per optimizer step (effective batch = batch_size x grad_accum).")})
    seed: int = field(default=0, metadata={"help": (
        "Seeds the train/validation split, the adapter init, dropout and each epoch's data order.")})
    bf16: bool = field(default=True, metadata={"help": (
        "bf16 autocast (weights stay fp32). 1.4-1.7x faster on CPUs with AVX512-BF16; set false "
        "on CPUs without it.")})
    val_fraction: float = field(default=0.1, metadata={"help": (
        "Share of rows held out for validation loss (deterministic by seed), in [0, 0.5].")})
    max_val_examples: int = field(default=64, metadata={"help": "At most this many held-out rows are scored."})
    eval_every: int = field(default=50, metadata={"help": "Validation loss every N optimizer steps (0 = only at the end)."})
    save_every: int = field(default=25, metadata={"help": "Checkpoint every N optimizer steps (0 = only at the end)."})
    max_minutes: float = field(default=0.0, metadata={"help": (
        "Stop cleanly (checkpoint, card, adapter) after this many minutes of this session; "
        "0 = no limit. Rerun to continue.")})
    threads: int = field(default=2, metadata={"help": "torch CPU threads."})
    max_length: int = field(default=1024, metadata={"help": (
        "Tokens per row; longer prompts lose their beginning (the answer is always kept).")})
    append_eos: bool = field(default=True, metadata={"help": "Append the EOS token to every answer."})
    qlora: bool = field(default=False, metadata={"help": (
        "Load the base in 4-bit NF4 with bitsandbytes (CUDA only) and train LoRA on top.")})
    adapter_dtype: str = field(default="fp32", metadata={"help": (
        "Precision of the saved adapter weights: 'fp32' or 'bf16' (half the size; the shipped "
        "adapter uses bf16 to stay small enough to commit).")})
    export_dir: str = field(default="", metadata={"help": (
        "Also copy the finished adapter (weights, adapter_config.json, training card) here, e.g. "
        "finetune/adapters/rerank, the folder recsage loads by default. Empty: no copy.")})


_FIELDS = {f.name: f for f in fields(LoraTrainConfig)}
_BOUNDS: dict[str, tuple[float, float | None, str]] = {
    "r": (1, 1024, "an integer from 1 to 1024"),
    "alpha": (1, 100000, "a positive integer"),
    "dropout": (0.0, 0.999, "a number in [0, 1)"),
    "lr": (1e-9, 1.0, "a number in (0, 1]"),
    "warmup_steps": (0, None, "an integer >= 0"),
    "weight_decay": (0.0, 1.0, "a number in [0, 1]"),
    "epochs": (1, 100000, "an integer >= 1"),
    "max_steps": (0, None, "an integer >= 0 (0 = use epochs)"),
    "batch_size": (1, 4096, "an integer >= 1"),
    "grad_accum": (1, 4096, "an integer >= 1"),
    "val_fraction": (0.0, 0.5, "a number in [0, 0.5]"),
    "max_val_examples": (1, None, "an integer >= 1"),
    "eval_every": (0, None, "an integer >= 0 (0 = only at the end)"),
    "save_every": (0, None, "an integer >= 0 (0 = only at the end)"),
    "max_minutes": (0.0, None, "a number >= 0 (0 = no limit)"),
    "threads": (1, 256, "an integer from 1 to 256"),
    "max_length": (8, 1_000_000, "an integer >= 8"),
}


def config_help() -> dict[str, str]:
    """Field name -> help text, for the CLI and the configs README."""
    return {name: f.metadata.get("help", "") for name, f in _FIELDS.items()}


def validate_config(config: LoraTrainConfig) -> LoraTrainConfig:
    """Check every value; the error names the key, what it got and what is valid."""
    for name, f in _FIELDS.items():
        value = getattr(config, name)
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if name == "target_modules":
            ok = (isinstance(value, str) and value.strip()) or (
                isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
            )
            if not ok:
                raise InputError(
                    f"config key 'target_modules' is {value!r}: use 'all-linear' or a non-empty list of "
                    "module names, e.g. [\"q_proj\", \"v_proj\"]"
                )
            continue
        if kind == "bool":
            if not isinstance(value, bool):
                raise InputError(f"config key {name!r} is {value!r}: use true or false")
            continue
        if kind == "str":
            if not isinstance(value, str):
                raise InputError(f"config key {name!r} is {value!r}: use a string (a path or name)")
            continue
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise InputError(f"config key {name!r} is {value!r}: use an integer")
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"config key {name!r} is {value!r}: use a number")
            setattr(config, name, float(value))
            value = float(value)
        if name in _BOUNDS:
            low, high, valid = _BOUNDS[name]
            if value < low or (high is not None and value > high):
                raise InputError(f"config key {name!r} is {value!r}: use {valid}")
    if config.adapter_dtype not in ("fp32", "bf16"):
        raise InputError(f"config key 'adapter_dtype' is {config.adapter_dtype!r}: use \"fp32\" or \"bf16\"")
    if not config.data:
        raise InputError("config key 'data' is missing: give a JSONL file of {\"prompt\", \"answer\"} rows")
    if not config.output_dir:
        raise InputError("config key 'output_dir' is missing: give a folder for the adapter and checkpoints")
    return config


def load_config(toml_path: str | Path, **overrides: Any) -> LoraTrainConfig:
    """Read a TOML config (flat keys, as in finetune/configs/*.toml) and apply CLI overrides.

    Relative paths in the file are taken relative to the current directory (run from the repo
    root), so the same config works from the CLI and from CI.
    """
    path = Path(toml_path)
    if not path.is_file():
        raise InputError(f"config file not found: {path} (see finetune/configs/ for examples)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from exc
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(raw, source=str(path))


def config_from_dict(raw: dict[str, Any], source: str = "config") -> LoraTrainConfig:
    unknown = [k for k in raw if k not in _FIELDS]
    if unknown:
        key = unknown[0]
        close = get_close_matches(key, list(_FIELDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(
            f"{source}: unknown config key {key!r}{hint}; valid keys: {', '.join(_FIELDS)}"
        )
    return validate_config(LoraTrainConfig(**raw))


# --- data -----------------------------------------------------------------------------------------


def read_pairs(path: Path) -> list[dict[str, str]]:
    """The (prompt, answer) rows; any bad row stops the run with its line number."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"training data not found: {path} (config key 'data')")
    rows, errors = [], []
    for line_no, row, problem in iter_json_objects(path):
        if problem is None and not (isinstance(row.get("prompt"), str) and isinstance(row.get("answer"), str)
                                    and row["answer"]):
            problem = "need string 'prompt' and non-empty string 'answer'"
        if problem is not None:
            errors.append(f"{path}:{line_no}: {problem}")
            continue
        rows.append({"prompt": row["prompt"], "answer": row["answer"]})
    if errors:
        raise InputError(f"{len(errors)} bad row(s) in {path}:\n" + "\n".join(errors[:20]))
    if not rows:
        raise InputError(f"no rows in {path}")
    return rows


def split_rows(n: int, val_fraction: float, max_val: int, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, validation) index lists."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = min(max_val, round(n * val_fraction)) if val_fraction > 0 else 0
    if n_val and n - n_val < 1:
        n_val = n - 1
    return sorted(order[n_val:]), sorted(order[:n_val])


def encode_pair(tokenizer, prompt: str, answer: str, max_length: int, append_eos: bool) -> dict:
    """Token ids with labels -100 on the prompt, so only the answer carries loss."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"] if prompt else []
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if append_eos and tokenizer.eos_token_id is not None:
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    if not answer_ids:
        raise InputError(f"answer {answer!r} has no tokens")
    if len(answer_ids) >= max_length:
        raise InputError(f"an answer is {len(answer_ids)} tokens, not less than max_length {max_length}")
    truncated = len(prompt_ids) + len(answer_ids) > max_length
    if truncated:
        prompt_ids = prompt_ids[len(prompt_ids) + len(answer_ids) - max_length:]
    return {
        "input_ids": prompt_ids + answer_ids,
        "labels": [-100] * len(prompt_ids) + answer_ids,
        "truncated": truncated,
    }


def collate(encoded: list[dict], pad_id: int):
    import torch

    width = max(len(e["input_ids"]) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        mask[row, :n] = 1
    return ids, mask, labels


def epoch_order(n_train: int, seed: int, epoch: int) -> list[int]:
    """The data order of one epoch: a function of (seed, epoch) only, so resume replays it."""
    import numpy as np

    return np.random.default_rng([seed, epoch]).permutation(n_train).tolist()


# --- model --------------------------------------------------------------------------------------


def resolve_base(base_model: str | Path | None) -> str:
    if base_model:
        return str(base_model)
    from agent.config import load_settings
    from agent.models import model_path

    return str(model_path(load_settings(), "llm"))


def _load_base(base: str, qlora: bool):
    import torch

    from agent.errors import require

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


# --- checkpoints ---------------------------------------------------------------------------------


def _trainable(model) -> dict[str, Any]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(out: Path, model, optimizer, state: dict) -> None:
    """Write checkpoint.tmp/ fully, then swap it in, so a kill never leaves a half checkpoint."""
    import torch
    from safetensors.torch import save_file

    tmp, final, old = out / (CHECKPOINT + ".tmp"), out / CHECKPOINT, out / (CHECKPOINT + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({n: p.detach().contiguous().cpu() for n, p in _trainable(model).items()},
              str(tmp / "adapter.safetensors"))
    tensors: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda_rng"] = torch.cuda.get_rng_state()
    for index, values in optimizer.state_dict()["state"].items():
        for key, value in values.items():
            tensors[f"opt.{index}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    torch.save(tensors, tmp / "trainer_state.pt")
    (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
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
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    weights = load_file(str(folder / "adapter.safetensors"))
    params = _trainable(model)
    if set(weights) != set(params):
        raise InputError(f"checkpoint in {folder} does not match this model's adapter; "
                         "use a new output_dir or delete the checkpoint")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(weights[name].to(p.device, p.dtype))
    tensors = torch.load(folder / "trainer_state.pt", weights_only=True)
    opt_sd = optimizer.state_dict()
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": opt_sd["param_groups"]})
    torch.set_rng_state(tensors["torch_rng"])
    if "cuda_rng" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda_rng"])
    return state


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    data_sha = _file_sha256(Path(config.data))
    train_idx, val_idx = split_rows(len(rows), config.val_fraction, config.max_val_examples, config.seed)
    model, tokenizer = _load_base(base, config.qlora)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    encoded = [encode_pair(tokenizer, r["prompt"], r["answer"], config.max_length, config.append_eos)
               for r in rows]
    train_enc = [encoded[i] for i in train_idx]
    val_enc = [encoded[i] for i in val_idx]

    model = _peft_wrap(model, config)
    model.train()
    params = list(_trainable(model).values())
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
