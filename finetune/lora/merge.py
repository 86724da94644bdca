"""Fold a trained LoRA adapter into its base model: a plain model folder any loader can read (no peft),
for example to point the LLM role at (`recsage finetune merge`)."""

from __future__ import annotations

from pathlib import Path

from agent.core.errors import InputError
from agent.core.io import read_json
from agent.llm import load_causal_lm
from finetune.lora.config import resolve_base


def merge_adapter(base: str | Path | None, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Merge in fp32 on the CPU and save safetensors plus the tokenizer (the adapter's when it has
    one, else the base's). ``base`` None: the base the adapter records, else the provisioned LLM."""
    from transformers import AutoTokenizer

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise InputError(f"{adapter_dir} has no adapter_config.json: give the adapter/ folder a training run wrote")
    if not base:
        recorded = read_json(adapter_dir / "adapter_config.json").get("base_model_name_or_path")
        base = recorded if recorded and Path(recorded).exists() else resolve_base(None)
    model, tokenizer = load_causal_lm(base, "fp32", adapter=adapter_dir, device="cpu")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    if (adapter_dir / "tokenizer_config.json").exists():  # a run that changed the tokenizer saved its own
        tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
