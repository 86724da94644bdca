"""`finetune data --engine ray` without a cluster: the windows' candidates from several in-process
actors (tests/fakes/ray_pool.py) must give the one-process rows, in the same order, with the same
data card. The cluster itself: tests/integration/test_ray_eval.py."""

from __future__ import annotations

from agent.core.ray_cluster import RayOptions
from finetune import ray_data
from finetune.ray_data import ray_candidates
from finetune.rerank_data.sequences import build_sequence_rows
from tests.fakes.finetune_data import HistoryRetriever, cycle_split
from tests.fakes.ray_pool import InProcessPool


class PromptReranker:
    def pointwise_prompt(self, request, card, history=()):
        return f"{request} || {' ; '.join(history)} || {card}"


def test_windows_on_several_actors_give_the_one_process_rows_in_order(monkeypatch, fake_settings):
    split = cycle_split(n_items=20, n_users=30, length=9)
    pool = InProcessPool(actors=2, batch=3)
    monkeypatch.setattr(ray_data, "map_in_order", pool)
    cards = {i: f"card {i}" for i in split.item_ids}
    titles = [f"T{i}" for i in range(split.n_items)]
    args = (HistoryRetriever(split, offset=3, modulus=13), PromptReranker(), cards, titles, 25)
    want_rows, want_card = build_sequence_rows(*args, depth=5, negatives=2, seed=3)

    candidates = ray_candidates(None, fake_settings, 5, RayOptions(), progress=False,
                                opener=lambda project, settings: HistoryRetriever(split, offset=3, modulus=13))
    got_rows, got_card = build_sequence_rows(*args, depth=5, negatives=2, seed=3, candidates=candidates)

    assert len(pool.actors) == 2 and len(pool.batches) == 9  # 25 windows, 3 a batch
    assert got_rows == want_rows and got_card == want_card
    assert 0 < want_card["dropped_target_not_in_top"] < 25 and want_card["windows_kept"] > 0  # both paths taken

