"""The shared Ray mechanism of the batch jobs, without a cluster: the CPU check, connecting, and
the ordered actor round trip (numbered rows in, outputs back at their places whatever order the
batches come in). The cluster itself: tests/integration/test_ray_ingest.py and test_ray_eval.py."""

from __future__ import annotations

import sys

import pytest

from agent.core import ray_cluster
from agent.core.errors import InputError
from agent.core.ray_cluster import (
    OrderedActor,
    actor_count,
    actor_settings,
    batch_size_for,
    collect_in_order,
    indexed_rows,
    map_in_order,
)
from tests.fakes.ray_pool import as_batch

# --- planning ------------------------------------------------------------------------------------

def test_actor_count_fills_the_cluster_but_never_exceeds_the_work():
    assert actor_count(None, 1, [1.0, 1.0], work_items=100) == 2
    assert actor_count(None, 2, [4.0, 2.0], work_items=100) == 3  # 6 CPUs / 2 each
    assert actor_count(None, 1, [8.0], work_items=3) == 3
    assert actor_count(2, 1, [1.0, 1.0], work_items=100) == 2


def test_more_actor_cpus_than_the_cluster_has_is_refused_with_what_fits():
    with pytest.raises(InputError, match=r"--ray-actors 3 x 1 CPUs each = 3 CPUs, but the cluster has 2.*--ray-actors 2"):
        actor_count(3, 1, [1.0, 1.0], work_items=100)
    with pytest.raises(InputError, match=r"--ray-actors 2 x 2 CPUs each = 4 CPUs.*has 3.*--ray-actors 1 or fewer"):
        actor_count(2, 2, [2.0, 1.0], work_items=100)


def test_an_actor_larger_than_every_node_is_refused_even_when_the_total_suffices():
    with pytest.raises(InputError, match="asks for 2 CPUs but the largest node of the cluster has 1"):
        actor_count(None, 2, [1.0, 1.0, 1.0, 1.0], work_items=100)


def test_batches_give_each_actor_several_calls_within_the_configured_size():
    assert batch_size_for(100, 2, 256) == 13  # ceil(100 / (2 actors x 4 calls))
    assert batch_size_for(100_000, 2, 256) == 256
    assert batch_size_for(3, 4, 256) == 1


def test_an_actor_runs_with_the_cpus_it_reserved(fake_settings):
    mine = actor_settings(fake_settings.model_copy(update={"threads": 7}), 2, ocr_workers=2)
    assert (mine.threads, mine.ocr_workers) == (2, 2)


# --- connecting ----------------------------------------------------------------------------------

def test_without_ray_installed_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(InputError, match=r"pip install 'recsage\[ray\]'"):
        ray_cluster.import_ray()


def test_an_address_nobody_listens_on_is_refused_quickly():
    from tests.fakes.store import free_port

    with pytest.raises(InputError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:\d+.*ray start --head"):
        ray_cluster._check_reachable(f"127.0.0.1:{free_port()}")
    ray_cluster._check_reachable("auto")  # left to ray.init
    ray_cluster._check_reachable(None)


# --- ordered round trip, in process ----------------------------------------------------------------

class Square(OrderedActor):
    def __init__(self, offset: int = 0):
        self.offset = offset

    def handle(self, work: list) -> list:
        return [{"n": w["n"] ** 2 + self.offset} for w in work]


def test_outputs_come_back_at_their_rows_places_whatever_the_batch_order():
    rows = indexed_rows([{"n": n} for n in range(7)])
    actor = Square(offset=1)
    batches = [actor(as_batch(rows[start:start + 3])) for start in (6, 3, 0)]  # last batch first
    advanced = []
    assert collect_in_order(batches, 7, advanced.append) == [{"n": n * n + 1} for n in range(7)]
    assert advanced == [1, 3, 3]


def test_a_rerun_batch_fills_the_same_places_and_counts_once():
    rows = indexed_rows([{"n": n} for n in range(4)])
    first, second = Square()(as_batch(rows[:2])), Square()(as_batch(rows[2:]))
    advanced = []
    assert collect_in_order([first, second, first], 4, advanced.append) == [{"n": 0}, {"n": 1}, {"n": 4}, {"n": 9}]
    assert advanced == [2, 2, 0]


def test_a_missing_row_is_an_error_not_a_shorter_result():
    rows = indexed_rows([{"n": n} for n in range(4)])
    with pytest.raises(RuntimeError, match="Ray returned 2 of 4 rows"):
        collect_in_order([Square()(as_batch(rows[:2]))], 4)


def test_an_actor_that_drops_a_row_is_caught():
    class Lossy(OrderedActor):
        def handle(self, work):
            return work[1:]

    with pytest.raises(RuntimeError, match="Lossy returned 1 outputs for 2 rows"):
        Lossy()(as_batch(indexed_rows([1, 2])))


def test_no_work_starts_no_cluster(monkeypatch):
    monkeypatch.setattr(ray_cluster, "connected", lambda address: pytest.fail("connected with nothing to do"))
    assert map_in_order([], Square, {}, ray_cluster.RayOptions(), 4) == []
