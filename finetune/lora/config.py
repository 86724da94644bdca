"""The recipe of a LoRA run: a :class:`~agent.core.config.ConfigBase` with help text and bounds per
field, read from flat TOML files (finetune/configs/).

Every value is checked before anything loads. Types are strict (``true`` is not a number, ``2.5`` is
not an integer, ``"yes"`` is not a boolean), and an error names the key, what it got and what is
valid (an unknown key gets a "did you mean").
"""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, StrictStr, ValidationError, field_validator, model_validator

from agent.core.config import ConfigBase
from agent.core.errors import InputError


def _bounded(default, description: str, valid: str, **bounds):
    """A strict numeric field; ``valid`` says in words what its bounds allow (used in errors)."""
    return Field(default, strict=True, allow_inf_nan=False, description=description,
                 json_schema_extra={"valid": valid}, **bounds)


class LoraTrainConfig(ConfigBase):
    """Settings of one LoRA run; a TOML file maps onto it key by key (see finetune/configs/)."""

    data: str = Field("", strict=True, description=(
        "JSONL file of {\"prompt\": str, \"answer\": str} rows. The prompt is already formatted "
        "(chat template included if wanted); loss is taken on the answer tokens only."))
    output_dir: str = Field("", strict=True, description=(
        "Folder for checkpoint/, adapter/, training_card.json and loss.png. Rerunning with the "
        "same folder resumes from its checkpoint."))
    base_model: str = Field("", strict=True, description=(
        "Base causal LM: an LLM role (llm, llm_qwen05, llm_qwen15: the provisioned model), a local "
        "folder or a hub id. Empty: the llm role. Rows must be formatted with this model's chat "
        "template (every LLM role uses ChatML)."))
    r: int = _bounded(16, "LoRA rank.", "an integer from 1 to 1024", ge=1, le=1024)
    alpha: int = _bounded(32, "LoRA alpha (the update is scaled by alpha / r).", "a positive integer",
                          ge=1, le=100000)
    dropout: float = _bounded(0.05, "Dropout on the LoRA input, in [0, 1).", "a number in [0, 1)",
                              ge=0.0, le=0.999)
    target_modules: StrictStr | list[StrictStr] = Field("all-linear", description=(
        "Modules that get adapters: 'all-linear' or a list of module names such as "
        "[\"q_proj\", \"v_proj\"]."))
    lr: float = _bounded(1e-3, "AdamW learning rate (constant after warmup).", "a number in (0, 1]",
                         ge=1e-9, le=1.0)
    warmup_steps: int = _bounded(0, "Linear learning-rate warmup, in optimizer steps.", "an integer >= 0", ge=0)
    weight_decay: float = _bounded(0.0, "AdamW weight decay on the adapter weights.", "a number in [0, 1]",
                                   ge=0.0, le=1.0)
    epochs: int = _bounded(1, "Passes over the training rows (used when max_steps is 0).", "an integer >= 1",
                           ge=1, le=100000)
    max_steps: int = _bounded(0, (
        "Optimizer steps to train in total; 0 = epochs x steps per epoch. Raising it and rerunning "
        "continues a finished run."), "an integer >= 0 (0 = use epochs)", ge=0)
    batch_size: int = _bounded(4, "Rows per forward pass.", "an integer >= 1", ge=1, le=4096)
    grad_accum: int = _bounded(1, "Forward passes per optimizer step (effective batch = batch_size x grad_accum).",
                               "an integer >= 1", ge=1, le=4096)
    seed: int = _bounded(0, "Seeds the train/validation split, the adapter init, dropout and each epoch's data order.",
                         "an integer")
    bf16: bool = Field(True, strict=True, description=(
        "bf16 autocast (weights stay fp32): faster on CPUs with AVX512-BF16; set false "
        "on CPUs without it."))
    val_fraction: float = _bounded(0.1, (
        "Share of rows held out for validation loss (deterministic by seed), in [0, 0.5]."),
        "a number in [0, 0.5]", ge=0.0, le=0.5)
    max_val_examples: int = _bounded(64, "At most this many held-out rows are scored.", "an integer >= 1", ge=1)
    eval_every: int = _bounded(50, "Validation loss every N optimizer steps (0 = only at the end).",
                               "an integer >= 0 (0 = only at the end)", ge=0)
    save_every: int = _bounded(25, "Checkpoint every N optimizer steps (0 = only at the end).",
                               "an integer >= 0 (0 = only at the end)", ge=0)
    max_minutes: float = _bounded(0.0, (
        "Stop cleanly (checkpoint, card, adapter) after this many minutes of this session; "
        "0 = no limit. Rerun to continue."), "a number >= 0 (0 = no limit)", ge=0.0)
    threads: int = _bounded(2, "torch CPU threads.", "an integer from 1 to 256", ge=1, le=256)
    max_length: int = _bounded(1024, "Tokens per row; longer prompts lose their beginning (the answer is always kept).",
                               "an integer >= 8", ge=8, le=1_000_000)
    append_eos: bool = Field(True, strict=True, description="Append the EOS token to every answer.")
    qlora: bool = Field(False, strict=True, description=(
        "Load the base in 4-bit NF4 with bitsandbytes (CUDA only) and train LoRA on top."))
    adapter_dtype: Literal["fp32", "bf16"] = Field("fp32", description=(
        "Precision of the saved adapter weights: 'fp32' or 'bf16' (half the size; the shipped "
        "adapter uses bf16 to stay small enough to commit)."))
    export_dir: str = Field("", strict=True, description=(
        "Also copy the finished adapter (weights, adapter_config.json, training card) here, e.g. "
        "finetune/adapters/rerank, the folder recsage loads by default. Empty: no copy."))

    @field_validator("target_modules", mode="before")
    @classmethod
    def _module_names(cls, value):
        ok = (isinstance(value, str) and value.strip()) or (
            isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
        )
        if not ok:
            raise ValueError(
                f"config key 'target_modules' is {value!r}: use 'all-linear' or a non-empty list of "
                "module names, e.g. [\"q_proj\", \"v_proj\"]"
            )
        return value

    @model_validator(mode="after")
    def _paths_given(self) -> Self:
        if not self.data:
            raise ValueError("config key 'data' is missing: give a JSONL file of {\"prompt\", \"answer\"} rows")
        if not self.output_dir:
            raise ValueError("config key 'output_dir' is missing: give a folder for the adapter and checkpoints")
        return self

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "config") -> Self:
        """Validate ``data``; the first problem becomes one ``InputError`` naming the key, the value
        it got and what is valid."""
        unknown = [k for k in data if k not in cls.model_fields]
        if unknown:
            close = get_close_matches(unknown[0], list(cls.model_fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InputError(f"{source}: unknown config key {unknown[0]!r}{hint}; "
                             f"valid keys: {', '.join(cls.model_fields)}")
        try:
            return cls(**data)
        except ValidationError as exc:
            raise InputError(_error_text(cls, exc.errors()[0])) from None


_USE_FOR_TYPE = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "finite_number": "a number",
    "string_type": "a string (a path or name)",
    "literal_error": "\"fp32\" or \"bf16\"",
}


def _error_text(cls: type[LoraTrainConfig], error: dict) -> str:
    if error["type"] == "value_error":  # raised by a validator above, already worded
        return error["msg"].removeprefix("Value error, ")
    name = str(error["loc"][0])
    extra = cls.model_fields[name].json_schema_extra or {}
    use = _USE_FOR_TYPE.get(error["type"]) or extra.get("valid") or error["msg"]
    return f"config key {name!r} is {error['input']!r}: use {use}"


def resolve_base(base_model: str | Path | None) -> str:
    """The base model's folder or hub id: an LLM role name (or empty, the ``llm`` role) becomes the
    provisioned model's folder; anything else is taken as given."""
    from agent.core.config import LLM_ROLES

    if base_model and str(base_model) not in LLM_ROLES:
        return str(base_model)
    from agent.core.config import load_settings
    from agent.provision.models import model_path

    return str(model_path(load_settings(), str(base_model or "llm")))


def load_config(toml_path: str | Path, **overrides: Any) -> LoraTrainConfig:
    """Read a recipe (flat keys, as in finetune/configs/*.toml) and apply CLI overrides (None values
    are ignored).

    Relative paths in the file are taken relative to the current directory (run from the repo
    root), so the same recipe works from the CLI and from CI.
    """
    path = Path(toml_path)
    if not path.is_file():
        raise InputError(f"config file not found: {path} (see finetune/configs/ for examples)")
    return LoraTrainConfig.from_toml(path, **overrides)
