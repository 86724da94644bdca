from types import SimpleNamespace

import numpy as np

from agent.explain.cooccur import CoOccurrence

# users x items (dense): u0 {0,1,2}, u1 {0,1}, u2 {1,2,3}, u3 {0,0,3} (a repeated item is one person)
SPLIT = SimpleNamespace(train=[np.array([0, 1, 2]), np.array([0, 1]), np.array([1, 2, 3]), np.array([0, 0, 3])],
                        n_items=5)


def test_counts_people_who_share_both_items():
    co = CoOccurrence(SPLIT)
    # item 1 with 0: u0, u1 -> 2; with 2: u0, u2 -> 2; with 3: u2 -> 1; with 4: nobody
    assert co.counts(1, [0, 2, 3, 4]).tolist() == [2, 2, 1, 0]
    # item 0 with 3: u3 only, counted once despite the repeat
    assert co.counts(0, [3]).tolist() == [1]


def test_strongest_prefers_the_most_recent_on_a_tie_and_none_without_shared_people():
    co = CoOccurrence(SPLIT)
    assert co.strongest(1, [0, 2, 3]) == (1, 2)  # 0 and 2 tie at 2: the later one
    assert co.strongest(4, [0, 1]) is None
    assert co.strongest(1, []) is None
