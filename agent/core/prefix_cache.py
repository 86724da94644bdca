"""Key/value caches of recently read prompt starts, reused across calls.

Many LLM calls start the same way: every tool choice reads the same system prompt (the tool list and
its examples) before one short message, every batch of explanations the same instructions before
each item's evidence. :class:`PrefixCache` keeps the key/value cache of the last few prompt starts a
model read; a new prompt that begins with one of them (at least ``min_tokens`` tokens in common)
starts from a copy of that cache cut to the common length and reads only its own tokens.

A cache is copied on the way in and on the way out: the forward that continues it grows it in
place, and a batch repeats it per row in place (agent.llm.over_prefix).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence

DEFAULT_ENTRIES = 8
DEFAULT_MIN_TOKENS = 32
"""A shorter common start is not worth a lookup: the saving is smaller than the copy."""


def common_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids ``a`` and ``b`` share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    """The last ``entries`` prompt starts a model read and their key/value caches (least recently
    used first out; 0 keeps none). Not thread-safe by itself: callers hold the model's lock."""

    def __init__(self, entries: int = DEFAULT_ENTRIES, min_tokens: int = DEFAULT_MIN_TOKENS):
        if entries < 0 or min_tokens < 1:
            raise ValueError(f"entries must be >= 0 (0: off) and min_tokens >= 1, got {entries}, {min_tokens}")
        self.entries, self.min_tokens = entries, min_tokens
        self._caches: OrderedDict[tuple[int, ...], object] = OrderedDict()
        self.stats = {"hits": 0, "misses": 0, "reused_tokens": 0}

    def lookup(self, ids: Sequence[int], limit: int | None = None) -> tuple[int, object | None]:
        """(n, a copy of a stored cache cut to the first n ids) for the stored start sharing the most
        leading ids with ``ids`` (at most ``limit``); (0, None) below ``min_tokens``."""
        limit = len(ids) if limit is None else min(limit, len(ids))
        best, best_key = 0, None
        for key in self._caches:
            n = min(common_length(key, ids), limit)
            if n > best:
                best, best_key = n, key
        if best < self.min_tokens or best_key is None:
            self.stats["misses"] += 1
            return 0, None
        self._caches.move_to_end(best_key)
        cache = copy.deepcopy(self._caches[best_key])
        if best < len(best_key):  # a negative crop removes that many tokens (transformers >= 4.4x, 5.x)
            cache.crop(best - len(best_key))
        self.stats["hits"] += 1
        self.stats["reused_tokens"] += best
        return best, cache

    def store(self, ids: Sequence[int], cache) -> None:
        """Keep a copy of ``cache``, the key/value cache of exactly ``ids`` (too short: ignored)."""
        if len(ids) < self.min_tokens or self.entries == 0:
            return
        key = tuple(ids)
        self._caches[key] = copy.deepcopy(cache)
        self._caches.move_to_end(key)
        while len(self._caches) > self.entries:
            self._caches.popitem(last=False)
