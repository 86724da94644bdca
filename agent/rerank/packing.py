"""Candidate suffixes packed a few to a row, to run over one cached prompt prefix.

Each row holds several candidates' suffixes side by side; a block mask keeps them apart (every
suffix token sees the whole prefix and, causally, its own suffix only) and positions restart after
the prefix for each suffix, so every candidate is scored exactly as if it ran alone.
"""

from __future__ import annotations

from collections.abc import Sequence

ROW_TOKENS = 128
"""Target length of one packed row of candidate suffixes: attention over a row costs its length times
(prefix + its length), so long rows waste it on masked pairs; short rows waste matmuls on padding.
Chosen by timing row lengths on 20 candidates (README, reranking speed)."""


def pack_suffixes(suffixes: Sequence[Sequence[int]], prefix_len: int, row_tokens: int = ROW_TOKENS,
                  boolean_mask: bool = True):
    """Candidate suffixes packed into a few rows of similar length, to run over a cached prefix.

    Returns (input_ids (R, W), position_ids (R, W), attention mask (R, 1, W, prefix_len + W), and for
    each suffix its (row, index of its last token)). Each suffix token attends to the whole prefix
    and causally to its own suffix only, and its positions continue from the prefix, so every suffix
    is scored exactly as if it ran alone after the prefix. Rows are filled longest suffix first into
    the currently shortest row, so padding stays small (equal lengths in token order). Padding
    tokens see only the prefix.
    ``boolean_mask``: True = may attend (SDPA); else an additive float mask (0 / -inf, eager).
    """
    import torch

    n_rows = max(1, min(len(suffixes), round(sum(len(s) for s in suffixes) / row_tokens)))
    rows: list[list[int]] = [[] for _ in range(n_rows)]  # suffix indices per row
    fill = [0] * n_rows
    # ties broken by the tokens, not the input order: the rows (and so every bf16 rounding) depend
    # only on which candidates there are, so candidate order cannot change a score at all
    for i in sorted(range(len(suffixes)), key=lambda i: (-len(suffixes[i]), list(suffixes[i]))):
        r = fill.index(min(fill))
        rows[r].append(i)
        fill[r] += len(suffixes[i])
    width = max(fill)
    ids = torch.zeros((n_rows, width), dtype=torch.long)
    owner = torch.full((n_rows, width), -1)
    offset = torch.zeros((n_rows, width), dtype=torch.long)
    where = [(0, 0)] * len(suffixes)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            n = len(suffixes[i])
            ids[r, at: at + n] = torch.tensor(suffixes[i], dtype=torch.long)
            owner[r, at: at + n] = i
            offset[r, at: at + n] = torch.arange(n)
            at += n
            where[i] = (r, at - 1)
    own = (owner[:, :, None] == owner[:, None, :]) & (owner[:, None, :] >= 0)
    allowed = torch.cat([torch.ones((n_rows, width, prefix_len), dtype=torch.bool),
                         own & (offset[:, None, :] <= offset[:, :, None])], dim=-1)
    mask = allowed[:, None]
    if not boolean_mask:
        mask = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    return ids, prefix_len + offset, mask, where


def uses_sdpa(model) -> bool:
    return getattr(model.config, "_attn_implementation", "sdpa") == "sdpa"
