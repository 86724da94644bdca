"""Settings of a LoRA run: a dataclass with help text per field, read from flat TOML files.

Every value is checked before anything loads, and an error names the key, what it got and what
is valid (an unknown key gets a "did you mean").
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from agent.core.errors import InputError


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
