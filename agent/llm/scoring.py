"""Scoring continuations: the log-probability of each option's tokens after a prompt, over the
prompt's cached key/value states (the tool chooser's constrained choice), one prompt at a time or
several at once (concurrent chats)."""

from __future__ import annotations

from collections.abc import Sequence

from agent.core.prefix_cache import common_length
from agent.llm.runtime import (
    LoadedLlm,
    cache_kwarg,
    keep_end,
    over_prefix,
    returned_cache,
    token_budget,
)


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
