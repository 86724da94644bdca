"""The micro-batching queue with a fake model: concurrent callers share one forward, each gets its
own rows' results in order, errors reach only the caller whose rows caused them, closing is clean."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.core.batching import BatcherClosed, MicroBatcher


class FakeModel:
    """Doubles each row; refuses the row "bad"; records every forward's rows."""

    def __init__(self, gate: threading.Event | None = None):
        self.forwards: list[list] = []
        self.gate = gate

    def __call__(self, rows: list) -> list:
        if self.gate is not None:
            self.gate.wait(5)
        self.forwards.append(list(rows))
        if "bad" in rows:
            raise ValueError("row 'bad' is not a number")
        return [row * 2 for row in rows]


def concurrently(batcher: MicroBatcher, jobs: list[list]) -> list:
    """Each job submitted from its own thread, all released at once; results (or exceptions) in job order."""
    barrier = threading.Barrier(len(jobs))

    def one(rows):
        barrier.wait()
        try:
            return batcher.submit(rows)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(one, jobs))


def test_concurrent_callers_share_one_forward_and_get_their_own_rows_back():
    model = FakeModel()
    batcher = MicroBatcher(model, window_ms=300, max_rows=100, name="fake")
    jobs = [[i, i + 100] for i in range(8)]
    results = concurrently(batcher, jobs)
    assert results == [[2 * i, 2 * i + 200] for i in range(8)]  # hand-doubled, in each caller's order
    assert len(model.forwards) == 1 and sorted(model.forwards[0]) == sorted(r for job in jobs for r in job)
    # a job's rows stay together and in order inside the forward
    for job in jobs:
        at = model.forwards[0].index(job[0])
        assert model.forwards[0][at: at + 2] == job
    assert {k: batcher.stats[k] for k in ("forwards", "rows", "jobs")} == {"forwards": 1, "rows": 16, "jobs": 8}
    assert batcher.stats["wait_s"] > 0 and batcher.stats["forward_s"] >= 0
    batcher.close()


def test_max_rows_splits_batches_but_never_a_job():
    model = FakeModel()
    batcher = MicroBatcher(model, window_ms=300, max_rows=6)
    results = concurrently(batcher, [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]])
    assert results == [[2, 4, 6], [8, 10, 12], [14, 16, 18], [20, 22, 24]]
    assert [len(rows) for rows in model.forwards] == [6, 6]
    assert batcher.submit(list(range(10))) == [2 * i for i in range(10)]  # larger than max_rows: alone, whole
    assert model.forwards[-1] == list(range(10))
    batcher.close()


def test_an_error_reaches_only_the_caller_whose_rows_caused_it():
    model = FakeModel()
    batcher = MicroBatcher(model, window_ms=300, max_rows=100)
    results = concurrently(batcher, [[1], ["bad"], [3, 4]])
    assert results[0] == [2] and results[2] == [6, 8]
    assert isinstance(results[1], ValueError) and "bad" in str(results[1])
    # the gathered forward failed, then each job ran alone
    assert len(model.forwards) == 4 and sorted(map(len, model.forwards)) == [1, 1, 2, 4]
    assert batcher.submit([5]) == [10]  # the worker survives
    batcher.close()


def test_a_forward_returning_the_wrong_number_of_results_is_an_error():
    batcher = MicroBatcher(lambda rows: rows[:-1], window_ms=0)
    with pytest.raises(RuntimeError, match="1 results for 2 rows"):
        batcher.submit([1, 2])
    batcher.close()


def test_close_finishes_the_running_forward_and_fails_the_waiting_jobs():
    gate = threading.Event()
    model = FakeModel(gate)
    batcher = MicroBatcher(model, window_ms=0, max_rows=1)
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(batcher.submit, [1])
        deadline = time.monotonic() + 5
        while batcher.stats["forwards"] == 0 and time.monotonic() < deadline:  # [1] is inside the forward
            time.sleep(0.01)
        waiting = pool.submit(batcher.submit, [2])
        while not batcher._pending and time.monotonic() < deadline:
            time.sleep(0.01)
        closer = threading.Thread(target=batcher.close)
        closer.start()
        with pytest.raises(BatcherClosed, match="retry"):
            waiting.result(timeout=5)
        gate.set()
        assert running.result(timeout=5) == [2]
        closer.join(5)
    assert not batcher._worker.is_alive()
    with pytest.raises(BatcherClosed, match="closed"):
        batcher.submit([3])
    assert batcher.submit([]) == []


def test_a_forward_may_submit_to_its_own_queue():
    holder: dict = {}

    def forward(rows):
        return holder["batcher"].submit([r + 1 for r in rows]) if rows[0] < 1 else rows

    holder["batcher"] = batcher = MicroBatcher(forward, window_ms=0)
    assert batcher.submit([0]) == [1]
    batcher.close()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_rows"):
        MicroBatcher(lambda rows: rows, max_rows=0)


def test_a_queue_lets_priority_work_go_first_and_gathers_meanwhile():
    from agent.core.batching import Priority

    ranking, model = Priority(), FakeModel()
    batcher = MicroBatcher(model, window_ms=0, max_rows=100, after=ranking, max_yield_s=30)
    with ThreadPoolExecutor(2) as pool:
        with ranking.hold():
            first = pool.submit(batcher.submit, [1])
            second = pool.submit(batcher.submit, [2])
            time.sleep(0.3)
            assert model.forwards == []  # nothing runs while a chat still ranks
        assert sorted(first.result(5) + second.result(5)) == [2, 4]
    assert [sorted(rows) for rows in model.forwards] == [[1, 2]]  # both gathered while waiting
    batcher.close()


def test_priority_work_cannot_starve_a_queue():
    from agent.core.batching import Priority

    ranking = Priority()
    batcher = MicroBatcher(FakeModel(), window_ms=0, after=ranking, max_yield_s=0.2)
    with ranking.hold():
        start = time.monotonic()
        assert batcher.submit([3]) == [6]
        assert 0.15 < time.monotonic() - start < 5
    batcher.close()


def test_work_that_started_after_a_job_arrived_does_not_hold_it_back():
    from agent.core.batching import Priority

    ranking = Priority()
    batcher = MicroBatcher(FakeModel(), window_ms=0, after=ranking, max_yield_s=30)
    earlier = ranking.hold()
    earlier.__enter__()  # a chat that arrived before the job
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(batcher.submit, [4])
        time.sleep(0.2)
        with ranking.hold():  # a chat that arrived after it: the job does not wait for this one
            assert not job.done()
            earlier.__exit__(None, None, None)
            assert job.result(5) == [8]
            assert ranking.active == 1
    batcher.close()
