"""PrefixCache: the longest stored start wins, copies are cut to the common length, LRU eviction."""

import pytest

from agent.core.prefix_cache import PrefixCache, common_length


class FakeKV:
    """Stands for a key/value cache: one entry per token id read."""

    def __init__(self, ids):
        self.ids = list(ids)

    def crop(self, n):
        assert n < 0, "transformers' caches take the number of tokens to remove, negated"
        self.ids = self.ids[:n]


def test_common_length():
    assert common_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_length([], [1]) == 0
    assert common_length([1, 2], [1, 2]) == 2


def test_the_longest_shared_start_is_reused_as_a_cut_copy():
    cache = PrefixCache(min_tokens=2)
    cache.store([1, 2, 3, 4], FakeKV([1, 2, 3, 4]))
    cache.store([1, 2, 9, 9, 9], FakeKV([1, 2, 9, 9, 9]))
    n, kv = cache.lookup([1, 2, 3, 7, 8])
    assert n == 3 and kv.ids == [1, 2, 3]  # the first entry shares 3 ids, the second only 2
    n, again = cache.lookup([1, 2, 3, 7, 8])
    assert again.ids == [1, 2, 3] and again is not kv  # the stored cache was not cut in place


def test_the_limit_caps_the_reuse_and_short_starts_miss():
    cache = PrefixCache(min_tokens=3)
    cache.store([1, 2, 3, 4], FakeKV([1, 2, 3, 4]))
    assert cache.lookup([1, 2, 3, 4], limit=3)[0] == 3  # leave the last id to read (its logits are needed)
    assert cache.lookup([1, 2, 5]) == (0, None)  # 2 ids in common, below min_tokens
    assert cache.stats == {"hits": 1, "misses": 1, "reused_tokens": 3}


def test_a_stored_cache_is_a_copy_and_the_least_recently_used_goes_first():
    cache = PrefixCache(entries=2, min_tokens=1)
    kv = FakeKV([1, 1])
    cache.store([1, 1], kv)
    kv.ids.append(5)  # the caller grows its cache after storing it
    cache.store([2, 2], FakeKV([2, 2]))
    assert cache.lookup([1, 1, 0])[1].ids == [1, 1]  # unchanged copy; [1, 1] is now the most recent
    cache.store([3, 3], FakeKV([3, 3]))  # evicts [2, 2]
    assert cache.lookup([2, 2, 0]) == (0, None)
    assert cache.lookup([1, 1, 0])[0] == 2


def test_no_entries_keeps_nothing():
    cache = PrefixCache(entries=0, min_tokens=1)
    cache.store([1, 2], FakeKV([1, 2]))
    assert cache.lookup([1, 2, 3]) == (0, None)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        PrefixCache(entries=-1)
    with pytest.raises(ValueError):
        PrefixCache(min_tokens=0)
