"""Running a loaded causal LM: the token budget, the chat template, key/value caches over a shared
prefix, and batched greedy generation (:class:`LoadedLlm`), optionally constrained token by token.

Every run stays within a token budget (``Settings.max_forward_tokens``, never past the model's
context): a prompt over it loses its start, so no caller (chat, tools, explanations, a catalog's
huge text) can hold the one shared model with an unbounded prompt.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from agent.core.config import Settings
from agent.core.prefix_cache import PrefixCache

T, R = TypeVar("T"), TypeVar("R")
FORWARD_TOKENS: int = Settings.model_fields["max_forward_tokens"].default
"""Tokens one forward pass may read when no settings say otherwise (the setting's default)."""


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

    @functools.cached_property
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
