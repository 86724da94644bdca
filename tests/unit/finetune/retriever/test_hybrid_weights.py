"""The hybrid's weights are chosen on the validation targets only, by fusing every user at once."""

from __future__ import annotations

import numpy as np
import pytest

from finetune.retriever.hybrid_weights import choose_weights
from tests.fakes.finetune_data import random_split


def test_choose_weights_prefers_the_informative_system_on_validation():
    split = random_split(n_users=20)
    rng = np.random.default_rng(3)
    oracle = rng.normal(size=(split.n_users, split.n_items))
    oracle[np.arange(split.n_users), split.val] = 10.0  # knows every validation target
    adversary = -oracle  # ranks it last
    weights, table = choose_weights(split, {"oracle": oracle, "adversary": adversary},
                                    {"adversary": [0.0, 0.5, 2.0]})
    assert weights == {"oracle": 1.0, "adversary": 0.0}
    assert [w["adversary"] for w, _ in table] == [0.0, 0.5, 2.0]
    assert table[0][1]["NDCG@1"] == 1.0
    # explicit list of combinations, and scorer callables instead of matrices
    scorers = {"oracle": lambda u, h: oracle[u], "adversary": lambda u, h: adversary[u]}
    weights, _ = choose_weights(split, scorers, [{"adversary": 1.0}, {"oracle": 1.0}])
    assert weights == {"oracle": 1.0, "adversary": 0.0}
    with pytest.raises(ValueError, match="unknown|not systems"):
        choose_weights(split, scorers, {"content": [1.0]})
