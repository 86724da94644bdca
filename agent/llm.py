"""The one place that loads a causal LM and runs it: loading (base + optional LoRA adapter), the chat
template, batched greedy generation, and scoring continuations over a shared, cached prefix.

Serving (reranker, explainer, chat agent), training (LoRA), merging and provisioning (GGUF ->
safetensors) all load through :func:`load_causal_lm`. Serving shares one instance per (path,
adapter, dtype) through :func:`load_llm`, with one lock every caller holds while running it: memory
stays flat and the model is safe to share between threads (the HTTP server runs requests
concurrently).

Every run stays within a token budget (``Settings.max_forward_tokens``, never past the model's
context): a prompt over it loses its start, so no caller (chat, tools, explanations, a catalog's
huge text) can hold the one shared model with an unbounded prompt.

Serving weights load in bf16 on CPUs with native bf16 (AVX512-BF16/AMX) and on CUDA, fp32
elsewhere: bf16 weights avoid autocast's re-cast of every weight on every call (README has the
measurement).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from agent.core.config import Settings
from agent.core.prefix_cache import PrefixCache, common_length

T, R = TypeVar("T"), TypeVar("R")
_LOCK = threading.Lock()
_LOADED: dict[tuple, LoadedLlm] = {}
FORWARD_TOKENS: int = Settings.model_fields["max_forward_tokens"].default
"""Tokens one forward pass may read when no settings say otherwise (the setting's default)."""
DTYPES = ("auto", "bf16", "fp32")
ADAPTER_WEIGHTS = "adapter_model.safetensors"


# --- loading ------------------------------------------------------------------------------------


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
        return _LOADED[key]


# --- running ------------------------------------------------------------------------------------


def token_budget(model, max_forward_tokens: int | None = None) -> int:
    """Tokens one forward pass may read: the configured limit, and never past the model's context
    (positions beyond it are untrained, and attention memory grows with the square of the length)."""
    limit = max_forward_tokens or FORWARD_TOKENS
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return min(limit, context) if isinstance(context, int) and context > 0 else limit


def keep_end(ids: Sequence[int], budget: int) -> list[int]:
    """The last ``budget`` token ids: a prompt over the budget loses its start, never the question
    (every prompt here ends with the request and the answer's start)."""
    ids = list(ids)
    return ids[len(ids) - max(1, budget):] if len(ids) > budget else ids


def row_groups(lengths: Sequence[int], extra: int, budget: int) -> list[list[int]]:
    """Consecutive indices grouped so that rows x (longest length + ``extra``) stays within
    ``budget`` in each group (a single row always forms a group)."""
    groups: list[list[int]] = []
    width = 0
    for i, n in enumerate(lengths):
        wider = max(width, n)
        if groups and (len(groups[-1]) + 1) * (wider + extra) <= budget:
            groups[-1].append(i)
            width = wider
        else:
            groups.append([i])
            width = n
    return groups


def chat_prompt(tokenizer, system: str, user: str) -> str:
    """The chat-formatted prompt of one system and one user turn, ending where the answer starts."""
    return tokenizer.apply_chat_template(
        [{"role": "system", "content": system}, {"role": "user", "content": user}],
        tokenize=False,
        add_generation_prompt=True,
    )


def cache_kwarg(module) -> str:
    """transformers 5 names the key/value cache argument ``cache``; older releases ``past_key_values``."""
    import inspect

    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(output):
    """The key/value cache a forward pass returned, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def prefix_forward(module, prefix_ids):
    """Run a (1, P) prefix once: (the forward's output, its key/value cache) for :func:`over_prefix`.

    ``module`` is a causal LM or its bare transformer (``model.model``, no vocabulary head)."""
    out = module(input_ids=prefix_ids, use_cache=True)
    return out, returned_cache(out)


def over_prefix(module, cache, input_ids, position_ids, attention_mask):
    """Run a batch of rows after a cached prefix: the (1, P) cache is repeated for the rows in
    place (the forward also grows it: pass a copy to reuse it). ``position_ids`` continue from
    the prefix; ``attention_mask`` covers prefix + rows, as a (R, P + W) padding mask or a
    (R, 1, W, P + W) block mask."""
    cache.batch_repeat_interleave(input_ids.shape[0])
    return module(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                  use_cache=True, **{cache_kwarg(module): cache})


def continuation_logprobs(llm: LoadedLlm, prompt: str, options: Sequence[str]) -> list[float]:
    """Log-probability of each option's tokens after ``prompt``: the prompt runs once, its key/value
    cache is repeated for a batch of the (right-padded) options. The same numbers as running every
    option after the whole prompt, without re-reading a long prompt once per option. An LLM on a
    server (agent.llm_server.RemoteLlm) scores there."""
    import torch

    if not isinstance(llm, LoadedLlm):
        return llm.continuation_logprobs(prompt, options)
    tok = llm.tokenizer
    rows = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    width, n = max(len(r) for r in rows), len(rows)
    budget = token_budget(llm.model, llm.max_forward_tokens)
    prompt_ids = keep_end(tok(prompt, add_special_tokens=False)["input_ids"], budget - width)
    ids = torch.zeros((n, width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    with llm.lock, torch.inference_mode():
        last, cache = llm.read_prefix(prompt_ids, last_logits=True)
        positions = torch.arange(len(prompt_ids), len(prompt_ids) + width).expand(n, -1)
        mask = torch.ones((n, len(prompt_ids) + width), dtype=torch.long)
        out = over_prefix(llm.model, cache, ids, positions, mask)
    head = torch.log_softmax(last.float(), dim=-1)
    rest = torch.log_softmax(out.logits.float(), dim=-1)
    return [float(head[r[0]] + sum(rest[i, j - 1, r[j]] for j in range(1, len(r)))) for i, r in enumerate(rows)]


def continuation_logprobs_many(llm: LoadedLlm, jobs: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
    """:func:`continuation_logprobs` for several ``(prompt, options)`` at once (concurrent chats'
    tool choices) in two forward passes: the prompts' common start comes from the prefix cache, the
    rest of every prompt runs in one pass (right-padded), then every option of every prompt in a
    second one over its own prompt's cache. The same numbers as one call per prompt."""
    import torch

    if len(jobs) < 2 or not isinstance(llm, LoadedLlm):
        return [continuation_logprobs(llm, prompt, options) for prompt, options in jobs]
    tok = llm.tokenizer
    options = [[tok(o, add_special_tokens=False)["input_ids"] for o in opts] for _, opts in jobs]
    width = max(len(r) for rows in options for r in rows)
    budget = token_budget(llm.model, llm.max_forward_tokens)
    prompts = [keep_end(tok(p, add_special_tokens=False)["input_ids"], budget - width) for p, _ in jobs]
    shared = min(min(common_length(prompts[0], p) for p in prompts), min(len(p) for p in prompts) - 1)
    lengths = [len(p) - shared for p in prompts]
    body, head_layer = llm.model.model, llm.model.get_output_embeddings()
    with llm.lock, torch.inference_mode():
        cache = None
        if shared:
            _, cache = llm.read_prefix(prompts[0][:shared])
            cache.batch_repeat_interleave(len(prompts))
        ids, mask = _right_padded([p[shared:] for p in prompts], max(lengths), shared)
        out = body(input_ids=ids, position_ids=(shared + torch.arange(ids.shape[1])).expand(len(prompts), -1),
                   attention_mask=mask, use_cache=True, **({cache_kwarg(body): cache} if cache is not None else {}))
        last = out.last_hidden_state[torch.arange(len(prompts)), torch.tensor(lengths) - 1]
        heads = torch.log_softmax(head_layer(last).float(), dim=-1)
        owner = [i for i, rows in enumerate(options) for _ in rows]
        cache = returned_cache(out)
        cache.batch_select_indices(torch.tensor(owner))
        flat = [r for rows in options for r in rows]
        ids, option_mask = _right_padded(flat, width, 0)
        seen = mask[owner]  # each option attends to its own prompt's real tokens
        positions = torch.stack([shared + lengths[i] + torch.arange(width) for i in owner])
        out = body(input_ids=ids, position_ids=positions, attention_mask=torch.cat([seen, option_mask], dim=-1),
                   use_cache=True, **{cache_kwarg(body): cache})
        # only the positions that predict an option's next token, a few rows of vocabulary at a time
        wanted = [(n, j) for n, r in enumerate(flat) for j in range(1, len(r))]
        picked = {}
        for lo in range(0, len(wanted), 64):
            chunk = wanted[lo: lo + 64]
            hidden = out.last_hidden_state[[n for n, _ in chunk], [j - 1 for _, j in chunk]]
            logps = torch.log_softmax(head_layer(hidden).float(), dim=-1)
            picked.update({(n, j): float(logps[k, flat[n][j]]) for k, (n, j) in enumerate(chunk)})
    scores = [float(heads[i, r[0]]) + sum(picked[(n, j)] for j in range(1, len(r)))
              for n, (i, r) in enumerate(zip(owner, flat, strict=True))]
    grouped, start = [], 0
    for rows in options:
        grouped.append(scores[start: start + len(rows)])
        start += len(rows)
    return grouped


def _right_padded(rows: Sequence[Sequence[int]], width: int, before: int):
    """(ids, mask) of token rows right-padded to ``width``; the mask also covers ``before`` cached
    positions ahead of them, all real."""
    import torch

    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), before + width), dtype=torch.long)
    mask[:, :before] = 1
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, before: before + len(r)] = 1
    return ids, mask


@dataclass
class LoadedLlm:
    """A causal LM, its tokenizer and the lock every caller holds while running it.

    ``max_forward_tokens``: the most tokens one forward pass reads (see :func:`token_budget`);
    :func:`load_llm` sets it from the settings."""

    model: object
    tokenizer: object
    lock: threading.RLock = field(default_factory=threading.RLock)
    max_forward_tokens: int | None = None
    prefixes: PrefixCache = field(default_factory=PrefixCache)
    """Recently read prompt starts (agent.core.prefix_cache): a prompt beginning like one reads only the rest."""

    def read_prefix(self, ids: Sequence[int], last_logits: bool = False):
        """(the last position's logits, or None unless ``last_logits``; the key/value cache of ``ids``),
        reading only the ids :attr:`prefixes` does not hold. The cache is the caller's to grow. Call
        under :attr:`lock`."""
        import torch

        ids = list(ids)
        n, cache = self.prefixes.lookup(ids, limit=len(ids) - 1 if last_logits else len(ids))
        if n == len(ids):
            return None, cache
        kwargs = {} if cache is None else {
            cache_kwarg(self.model): cache, "position_ids": torch.arange(n, len(ids)).unsqueeze(0),
            "attention_mask": torch.ones((1, len(ids)), dtype=torch.long)}
        out = self.model(input_ids=torch.tensor([ids[n:]]), use_cache=True, **kwargs, **self._last_logits_only)
        cache = returned_cache(out)
        self.prefixes.store(ids, cache)
        return (out.logits[0, -1] if last_logits else None), cache

    @property
    def _last_logits_only(self) -> dict:
        """Generation reads only the last position's logits: asking for just those skips the
        vocabulary projection of every prompt position (models whose forward takes ``logits_to_keep``)."""
        import inspect

        forward = getattr(self.model, "forward", None)
        try:
            takes = forward is not None and "logits_to_keep" in inspect.signature(forward).parameters
        except (TypeError, ValueError):
            takes = False
        return {"logits_to_keep": 1} if takes else {}

    def chat(self, system: str, user: str) -> str:
        """The chat-formatted prompt, ending where the assistant's answer starts."""
        return chat_prompt(self.tokenizer, system, user)

    def continuation_logprobs(self, prompt: str, options: Sequence[str]) -> list[float]:
        """See :func:`continuation_logprobs`."""
        return continuation_logprobs(self, prompt, options)

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 60,
        on_token: Callable[[int, str], None] | None = None,
        stop: Sequence[str] = ("\n\n",),
        allowed_tokens: Callable[[int, list[int]], Sequence[int]] | None = None,
    ) -> list[str]:
        """Greedy continuations of a batch of prompts (left-padded, one forward pass per step).

        ``on_token(i, text)`` streams each new piece of prompt i as it is produced. Generation of a
        row ends at the EOS token, at any ``stop`` string (not included) or at ``max_new_tokens``.
        ``allowed_tokens(i, new_ids)``: the token ids prompt i may write next, given the ids it has
        written (constrained decoding: every other token is masked out before the argmax).
        Within the token budget: a prompt too long for it loses its start (:func:`keep_end`), and
        a batch too large for one pass runs as several smaller batches.
        """
        budget = token_budget(self.model, self.max_forward_tokens)
        max_new_tokens = max(1, min(max_new_tokens, budget // 2))
        encoded = [keep_end(self.tokenizer(p, add_special_tokens=False)["input_ids"], budget - max_new_tokens)
                   for p in prompts]
        texts: list[str] = [""] * len(encoded)
        for group in row_groups([len(e) for e in encoded], max_new_tokens, budget):
            rows = self._generate_rows([encoded[i] for i in group], max_new_tokens, stop,
                                       None if on_token is None else _offset_callback(on_token, group),
                                       None if allowed_tokens is None else _offset_callback(allowed_tokens, group))
            for i, text in zip(group, rows, strict=True):
                texts[i] = text
        return texts

    def _generate_rows(self, encoded: list[list[int]], max_new_tokens: int, stop: Sequence[str],
                       on_token: Callable[[int, str], None] | None,
                       allowed_tokens: Callable[[int, list[int]], Sequence[int]] | None = None) -> list[str]:
        """Greedy generation of one batch of token-id prompts (see :meth:`generate`)."""
        import torch

        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        shared = shared_prefix(encoded)
        width = max(len(e) - shared for e in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, e in enumerate(encoded):  # each row's text after the shared prefix, left-padded
            ids[i, width - len(e) + shared:] = torch.tensor(e[shared:])
            mask[i, width - len(e) + shared:] = 1
        eos = {t for t in [tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")] if isinstance(t, int) and t >= 0}
        texts = [""] * len(encoded)
        done = [False] * len(encoded)
        new_tokens: list[list[int]] = [[] for _ in encoded]
        cache = None
        step_ids, positions = ids, shared + (mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([torch.ones((len(encoded), shared), dtype=torch.long), mask], dim=-1)
        last_only = self._last_logits_only
        with self.lock, torch.inference_mode():
            if shared:  # the rows' common start (the system prompt) is read once, its cache repeated per row
                _, cache = self.read_prefix(encoded[0][:shared])
                cache.batch_repeat_interleave(len(encoded))
            for _ in range(max_new_tokens):
                out = self.model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                                 use_cache=True, **{cache_kwarg(self.model): cache}, **last_only)
                cache = returned_cache(out)
                logits = out.logits[:, -1, :]
                if allowed_tokens is not None:
                    logits = _restricted(logits, [None if d else allowed_tokens(i, new_tokens[i])
                                                  for i, d in enumerate(done)])
                next_ids = logits.argmax(-1)
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
                mask = torch.cat([mask, torch.ones((len(encoded), 1), dtype=torch.long)], dim=-1)
                positions = positions[:, -1:] + 1
        return [t.strip() for t in texts]


MIN_SHARED_PREFIX = 16
"""Shorter common starts are not worth a separate forward pass."""


def shared_prefix(rows: Sequence[Sequence[int]]) -> int:
    """How many leading tokens every row shares (0 for one row or below :data:`MIN_SHARED_PREFIX`),
    leaving each row at least one token of its own, so the first step has something to read."""
    if len(rows) < 2:
        return 0
    n = 0
    for column in zip(*rows, strict=False):
        if any(t != column[0] for t in column):
            break
        n += 1
    n = min(n, min(len(r) for r in rows) - 1)
    return n if n >= MIN_SHARED_PREFIX else 0


def _offset_callback(on_token: Callable[[int, T], R], group: list[int]) -> Callable[[int, T], R]:
    """``on_token`` (or ``allowed_tokens``) for a sub-batch: its row i is prompt ``group[i]`` of the whole batch."""
    return lambda i, value: on_token(group[i], value)


def _restricted(logits, allowed: Sequence[Sequence[int] | None]):
    """``logits`` with every token outside row i's ``allowed[i]`` at -inf (None or empty: no limit)."""
    import torch

    masked = logits.clone()
    for i, ids in enumerate(allowed):
        if ids:
            keep = torch.full_like(masked[i], float("-inf"))
            keep[torch.as_tensor(list(ids), dtype=torch.long)] = 0.0
            masked[i] += keep
    return masked
