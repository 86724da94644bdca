"""Loading a causal LM: base weights (safetensors only) with an optional LoRA adapter merged in,
in bf16 where the hardware computes it natively; serving shares one instance per (path, adapter,
dtype) through :func:`load_llm`.

Serving weights load in bf16 on CPUs with native bf16 (AVX512-BF16/AMX) and on CUDA, fp32
elsewhere: bf16 weights avoid autocast's re-cast of every weight on every call (README has the
measurement).
"""

from __future__ import annotations

import threading
from pathlib import Path

from agent.core.prefix_cache import PrefixCache
from agent.llm.runtime import LoadedLlm

_LOCK = threading.Lock()
_LOADED: dict[tuple, LoadedLlm] = {}
DTYPES = ("auto", "bf16", "fp32")
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def native_bf16(device: str) -> bool:
    if device == "cuda":
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:  # pragma: no cover - not Linux
        return False


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """"auto" = "bf16" where ``device`` computes bf16 natively, else "fp32"."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return dtype


def load_causal_lm(
    path: Path | str,
    dtype: str = "fp32",
    adapter: Path | str | None = None,
    trainable: bool = False,
    *,
    device: str | None = None,
    quantize_4bit: bool = False,
    gguf_file: str | None = None,
):
    """(model, tokenizer) of the causal LM at ``path`` (a folder or hub id); nothing is cached.

    Weights load from safetensors only (no pickle), except a ``gguf_file`` inside ``path``, which
    provisioning dequantises once and saves as safetensors. ``dtype``: "fp32", "bf16" or "auto"
    (see :func:`resolve_dtype`). ``adapter``: a LoRA (peft) folder merged into the weights before the
    model moves to ``device`` (default: CUDA when available). ``trainable``: left in training
    shape for the LoRA trainer (no ``eval()``). ``quantize_4bit``: NF4 weights with bitsandbytes on
    CUDA device 0 (QLoRA), prepared for k-bit training when ``trainable``.
    """
    import torch
    import transformers

    device = device or default_device()
    torch_dtype = torch.bfloat16 if resolve_dtype(dtype, device) == "bf16" else torch.float32
    if gguf_file is not None:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), gguf_file=gguf_file)
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), gguf_file=gguf_file, dtype=torch_dtype)
    elif quantize_4bit:
        from agent.core.errors import require

        require("bitsandbytes", extra="qlora")
        quant = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(path), quantization_config=quant, device_map={"": 0}, use_safetensors=True
        )
        if trainable:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
    else:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype, use_safetensors=True)
    if adapter:
        model = merge_lora(model, adapter)
    if not quantize_4bit:  # a 4-bit model is placed by device_map and cannot move
        model = model.to(device)
    if not trainable:
        model.eval()
    return model, tokenizer


def merge_lora(model, adapter: Path | str):
    """``model`` with the LoRA adapter folder's update folded into its weights (no peft left)."""
    from peft import PeftModel

    from agent.core.errors import InputError

    adapter = Path(adapter)
    if adapter.is_dir() and not (adapter / ADAPTER_WEIGHTS).is_file():
        raise InputError(f"adapter {adapter} has no {ADAPTER_WEIGHTS}: adapters load from safetensors only")
    try:
        return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    except RuntimeError as exc:
        # an adapter fits only the base it was trained on: a task moved to another LLM role
        # (task_models) with the old adapter would otherwise fail with pages of tensor shapes
        if "size mismatch" not in str(exc):
            raise
        raise InputError(
            f"adapter {adapter} was trained on another base model ({_recorded_base(adapter)}), not on "
            f"{getattr(model, 'name_or_path', 'this model')}: use the adapter's base, train one on this "
            "model (recipe base_model = the role), or run zero-shot (for reranking: rerank_adapter = \"\")"
        ) from None


def _recorded_base(adapter: Path) -> str:
    import json

    try:
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        return str(config.get("base_model_name_or_path") or "not recorded")
    except (OSError, ValueError):
        return "not recorded"


def load_llm(settings, path: Path | str, adapter: Path | str | None = None, dtype: str = "auto") -> LoadedLlm:
    """The causal LM at ``path`` (serving passes the provisioned ``llm`` role,
    ``agent.provision.models.model_path(settings, "llm")``), with an optional LoRA adapter merged in;
    one shared instance per (path, adapter, dtype).

    ``dtype``: "auto" = bf16 where the CPU/GPU computes it natively, else fp32; "bf16"; "fp32".
    The path comes from the caller because provisioning itself loads through :func:`load_causal_lm`
    (GGUF conversion): this module stays below agent.provision in the import graph.
    """
    from agent.core.config import apply_thread_settings

    device = default_device()
    dtype = resolve_dtype(dtype, device)
    key = (str(path), str(adapter or ""), dtype)
    with _LOCK:
        if key not in _LOADED:
            # loaded under the lock: transformers' lazy module breaks when threads import it at once
            apply_thread_settings(settings)
            model, tokenizer = load_causal_lm(path, dtype, adapter=adapter or None, device=device)
            _LOADED[key] = LoadedLlm(model=model, tokenizer=tokenizer)
        _LOADED[key].max_forward_tokens = getattr(settings, "max_forward_tokens", None)
        entries = getattr(settings, "llm_prefix_cache", _LOADED[key].prefixes.entries)
        if _LOADED[key].prefixes.entries != entries:
            _LOADED[key].prefixes = PrefixCache(entries)
        return _LOADED[key]
