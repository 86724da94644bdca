"""Run/qrels files, and agreement of our metrics with ranx (the reference implementation)."""

from __future__ import annotations

import numpy as np
import pytest

from agent.retrieval.interactions import Split, split_from_interactions
from eval.metrics import METRICS, NOT_RANKED, evaluate
from eval.run_io import qrels_for, ranks_from_run, read_run, top_k_items, write_run
from tests.fakes.eval_data import frame, rank_users


def random_split(n_users: int = 50, n_items: int = 80, seed: int = 0) -> Split:
    """Users with 5-15 distinct items at random times; movieIds are sparse, like MovieLens."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        items = rng.choice(n_items, size=int(rng.integers(5, 16)), replace=False)
        rows += [(user, 10 * int(m) + 1, int(t)) for m, t in zip(items, rng.integers(0, 1000, len(items)))]
    return split_from_interactions(frame(rows))


def random_scorer(split: Split, seed: int = 1):
    table = np.random.default_rng(seed).random((split.n_users, split.n_items))  # distinct a.s.
    return lambda user, history: table[user]


def top_k_run(split: Split, scorer, split_name: str = "test", k: int = 50, users=None) -> dict:
    """A run over ``users`` (all by default): each user's :func:`top_k_items` by ``scorer``."""
    chosen = range(split.n_users) if users is None else users
    return {split.user_ids[u]: top_k_items(split, scorer(u, split.history(u, split_name)),
                                           split.history(u, split_name), k) for u in chosen}


def test_top_k_run_holds_unseen_items_by_original_id():
    split = random_split()
    run = top_k_run(split, random_scorer(split), "test", k=20)
    assert set(run) == set(split.user_ids)
    for user, docs in run.items():
        u = split.user_index[user]
        assert len(docs) == 20
        seen = {split.item_ids[i] for i in split.history(u, "test")}
        assert not seen & set(docs)
        scores = list(docs.values())
        assert scores == sorted(scores, reverse=True)


def test_files_round_trip(tmp_path):
    split = random_split(n_users=5)
    run = top_k_run(split, random_scorer(split), "val", k=50)
    qrels = qrels_for(split, "val")
    write_run(tmp_path / "run.json", run)
    assert read_run(tmp_path / "run.json") == run
    assert all(len(docs) == 1 and list(docs.values()) == [1] for docs in qrels.values())


def test_ranks_from_run_are_pessimistic_and_miss_absent_targets():
    run = {"1": {"a": 0.9, "b": 0.5, "c": 0.5}, "2": {"a": 0.3}}
    qrels = {"1": {"c": 1}, "2": {"z": 1}, "3": {"a": 1}}
    assert ranks_from_run(run, qrels).tolist() == [3, NOT_RANKED, NOT_RANKED]


def test_ranks_from_run_need_one_relevant_item():
    with pytest.raises(ValueError, match="leave-one-out"):
        ranks_from_run({"1": {"a": 1.0}}, {"1": {"a": 1, "b": 1}})


def test_metrics_agree_with_ranx(tmp_path):
    """One test on purpose: ranx compiles with numba on first use (tens of seconds)."""
    import ranx  # a test dependency (extra "test"); missing it must fail, not skip

    split = random_split()
    scorer = random_scorer(split)
    ks = (1, 5, 10, 20, 50)

    ours_ranks = rank_users(split, scorer, "test")  # against all items, history masked
    ours = evaluate(ours_ranks, ks=ks)
    assert 0 < ours["Recall@10"] < ours["Recall@50"] < 1  # hits and misses both exercised

    write_run(tmp_path / "run.json", top_k_run(split, scorer, "test", k=50))
    test_qrels = qrels_for(split, "test")
    run = ranx.Run.from_file(str(tmp_path / "run.json"))
    qrels = ranx.Qrels(test_qrels)
    names = {f"{name}@{k}": f"{name.lower()}@{k}" for name in METRICS for k in ks}
    theirs = ranx.evaluate(qrels, run, list(names.values()))

    for ours_name, ranx_name in names.items():
        assert ours[ours_name] == pytest.approx(float(theirs[ranx_name]), abs=1e-6), ours_name
    for name, fn in METRICS.items():  # per user as well, not only on average
        per_user = dict(zip(split.user_ids, fn(ours_ranks, 10), strict=True))
        ranx_per_user = run.scores[f"{name.lower()}@10"]
        assert set(ranx_per_user) == set(per_user)
        for user, value in ranx_per_user.items():
            assert per_user[user] == pytest.approx(float(value), abs=1e-6), (name, user)
    # ranks re-read from the truncated file agree with the full ranking up to its length
    from_file = ranks_from_run(read_run(tmp_path / "run.json"), test_qrels)
    order = [split.user_index[u] for u in test_qrels]
    assert evaluate(from_file, ks=ks) == pytest.approx(evaluate(ours_ranks[order], ks=ks))


def test_top_k_run_refuses_nan_and_drops_unscorable_items():
    split = random_split(n_users=3)
    with pytest.raises(ValueError, match="NaN"):
        top_k_run(split, lambda user, history: np.full(split.n_items, np.nan))
    only_two = np.full(split.n_items, -np.inf)
    only_two[split.test[0]] = only_two[split.test[1]] = 1.0
    run = top_k_run(split, lambda user, history: only_two, "test", users=[0])
    assert len(run[split.user_ids[0]]) <= 2
    assert split.item_ids[split.test[0]] in run[split.user_ids[0]]
