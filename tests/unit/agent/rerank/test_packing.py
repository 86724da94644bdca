"""Packing candidate suffixes into rows over a cached prefix: hand-computed rows, positions and
masks, and rows that do not depend on candidate order."""

from __future__ import annotations

import torch

from agent.rerank.packing import pack_suffixes


def test_pack_suffixes_hand_computed():
    """Lengths 5, 3, 3, 1 at 6 tokens a row: 2 rows, longest first into the shortest row, so
    row 0 = [s0, s3] and row 1 = [s1, s2], width 6 (row 0 padded by nothing, both full)."""
    suffixes = [[10] * 5, [11] * 3, [12] * 3, [13]]
    ids, positions, mask, where = pack_suffixes(suffixes, prefix_len=2, row_tokens=6)
    assert ids.tolist() == [[10, 10, 10, 10, 10, 13], [11, 11, 11, 12, 12, 12]]
    assert positions.tolist() == [[2, 3, 4, 5, 6, 2], [2, 3, 4, 2, 3, 4]]
    assert where == [(0, 4), (1, 2), (1, 5), (0, 5)]
    assert mask.shape == (2, 1, 6, 8)
    # s3 (row 0, column 5) sees the 2 prefix tokens and itself, not s0
    assert mask[0, 0, 5].tolist() == [True, True, False, False, False, False, False, True]
    # s2's second token (row 1, column 4) sees the prefix and s2's first two tokens, not s1
    assert mask[1, 0, 4].tolist() == [True, True, False, False, False, True, True, False]
    ids, _, mask, where = pack_suffixes([[1, 2, 3], [4]], prefix_len=1, row_tokens=2)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and where == [(0, 2), (1, 0)]
    assert mask[1, 0, 2].tolist() == [True, False, False, False]  # padding sees the prefix only
    additive = pack_suffixes([[1, 2, 3], [4]], prefix_len=1, row_tokens=2, boolean_mask=False)[2]
    assert additive[1, 0, 0].tolist() == [0.0, 0.0, float("-inf"), float("-inf")]


def test_pack_suffixes_rows_do_not_depend_on_candidate_order():
    """Same candidates in any order -> the very same rows, so bf16 rounding (which depends on what
    shares a row) cannot make candidate order change a score. Equal lengths are the hard case."""
    suffixes = [[7, 1], [3, 3], [5], [2, 9], [4, 4, 4], [1, 8]]
    rows = pack_suffixes(suffixes, prefix_len=3, row_tokens=4)[0]
    for order in ([5, 4, 3, 2, 1, 0], [3, 0, 5, 1, 4, 2]):
        assert torch.equal(pack_suffixes([suffixes[i] for i in order], prefix_len=3, row_tokens=4)[0], rows)
