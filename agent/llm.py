"""One place that loads the provisioned causal LM and runs it: scoring fixed options and generating.

The reranker, the explainer and the chat agent all use the same small instruct model. Loading it
once per (path, adapter) and serialising access with one lock keeps memory flat and makes the model
safe to share between threads (the HTTP server runs requests concurrently).

Weights load in bf16 on CPUs with native bf16 (AVX512-BF16/AMX) and on CUDA: measured faster than
fp32 weights under autocast, which re-casts every weight on every call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_LOCK = threading.Lock()
_LOADED: dict[tuple, LoadedLlm] = {}


@dataclass
class LoadedLlm:
    """A causal LM, its tokenizer and the lock every caller holds while running it."""

    model: object
    tokenizer: object
    lock: threading.RLock = field(default_factory=threading.RLock)

    def chat(self, system: str, user: str) -> str:
        """The chat-formatted prompt, ending where the assistant's answer starts."""
        return self.tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            tokenize=False,
            add_generation_prompt=True,
        )

    def option_logprobs(self, prompt: str, options: Sequence[str]) -> list[float]:
        """Log-probability of each option's full token sequence as the continuation of ``prompt``.

        Constrained choice: the answer is one of ``options`` by construction (the caller takes the
        argmax), so the model cannot name a tool or a label that does not exist.
        """
        import torch

        tok = self.tokenizer
        prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        rows = [prompt_ids + tok(opt, add_special_tokens=False)["input_ids"] for opt in options]
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with self.lock, torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits, dim=-1)
        out = []
        for i, r in enumerate(rows):
            span = range(len(prompt_ids), len(r))
            out.append(float(sum(logp[i, t - 1, r[t]] for t in span)))
        return out

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 60,
        on_token: Callable[[int, str], None] | None = None,
        stop: Sequence[str] = ("\n\n",),
    ) -> list[str]:
        """Greedy continuations of a batch of prompts (left-padded, one forward pass per step).

        ``on_token(i, text)`` streams each new piece of prompt i as it is produced. Generation of a
        row ends at the EOS token, at any ``stop`` string (not included) or at ``max_new_tokens``.
        """
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, width - len(e):] = torch.tensor(e)
            mask[i, width - len(e):] = 1
        eos = {t for t in [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")] if isinstance(t, int) and t >= 0}
        texts = [""] * len(prompts)
        done = [False] * len(prompts)
        new_tokens: list[list[int]] = [[] for _ in prompts]
        cache = None
        step_ids, positions = ids, (mask.cumsum(-1) - 1).clamp(min=0)
        with self.lock, torch.inference_mode():
            for _ in range(max_new_tokens):
                out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                 use_cache=True, **{cache_kwarg(self.model): cache})
                cache = returned_cache(out)
                next_ids = out.logits[:, -1, :].argmax(-1)
                for i, t in enumerate(next_ids.tolist()):
                    if done[i]:
                        continue
                    if t in eos:
                        done[i] = True
                        continue
                    new_tokens[i].append(t)
                    text = tok.decode(new_tokens[i], skip_special_tokens=True)
                    cut = min((text.find(s) for s in stop if s in text), default=-1)
                    if cut >= 0:
                        text, done[i] = text[:cut], True
                    if on_token is not None and len(text) > len(texts[i]):
                        on_token(i, text[len(texts[i]):])
                    texts[i] = text
                if all(done):
                    break
                step_ids = next_ids.unsqueeze(-1)
                mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=torch.long)], dim=-1)
                positions = positions[:, -1:] + 1
        return [t.strip() for t in texts]


def cache_kwarg(module) -> str:
    """transformers 5 names the key/value cache argument ``cache``; older releases ``past_key_values``."""
    import inspect

    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(output):
    """The key/value cache a forward pass returned, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def native_bf16(device: str) -> bool:
    if device == "cuda":
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:  # pragma: no cover - not Linux
        return False


def load_llm(settings=None, path: Path | str | None = None, adapter: Path | str | None = None,
             dtype: str = "auto") -> LoadedLlm:
    """The provisioned ``llm`` role (or ``path``), with an optional LoRA adapter merged in; cached.

    ``dtype``: "auto" = bf16 where the CPU/GPU computes it natively, else fp32; "bf16"; "fp32".
    """
    import torch

    from agent.core.config import apply_thread_settings, load_settings

    settings = settings or load_settings()
    if path is None:
        from agent.provision.models import model_path

        path = model_path(settings, "llm")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bf16" if native_bf16(device) else "fp32"
    key = (str(path), str(adapter or ""), dtype)
    with _LOCK:
        if key not in _LOADED:
            # imported under the lock: transformers' lazy module breaks when threads import it at once
            from transformers import AutoModelForCausalLM, AutoTokenizer

            apply_thread_settings(settings)
            torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
            if adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
            model.to(device).eval()
            _LOADED[key] = LoadedLlm(model=model, tokenizer=tokenizer)
        return _LOADED[key]
