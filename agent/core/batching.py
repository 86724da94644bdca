"""A micro-batching queue in front of a model: rows that concurrent callers submit within a few
milliseconds go through one ``forward`` call, and each caller gets back its own rows' results.

Concurrent HTTP requests each call a model for a handful of rows (a chat's ten explanations, one
reranking job); run one by one they queue behind a lock, run together they share one forward pass.
:class:`MicroBatcher` keeps one worker thread per model. The worker takes the oldest waiting job,
waits until ``window_ms`` after that job arrived (or until ``max_rows`` rows wait), and calls
``forward`` once on every gathered row, in arrival order. A job is never split: one larger than
``max_rows`` runs alone (``forward`` bounds its own passes, e.g. by a token budget).

A queue may let other work go first (``after``, a :class:`Priority`): the explanation queue waits,
within a limit, while chat turns still choose a tool and rank, so every chat's items come sooner and
the explanations that pile up meanwhile share bigger forwards.

Errors go to the caller that caused them: when a gathered forward raises, each job is run again
alone, so only the job whose rows fail gets the exception. :meth:`MicroBatcher.close` lets the
running forward finish, fails jobs that have not started with :class:`BatcherClosed`, and stops the
worker; a submit after closing fails the same way.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agent.core.errors import RecsageError


class BatcherClosed(RecsageError):
    """The queue was closed (the server is stopping) before this job ran."""


@dataclass(eq=False)
class _Job:
    rows: list
    arrived: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: list | None = None
    error: BaseException | None = None

    def settle(self, result: list | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class MicroBatcher:
    """One worker thread that gathers concurrent callers' rows into one ``forward(rows) -> results``.

    ``forward`` must return one result per row, in order. ``window_ms``: how long the oldest waiting
    job waits for company; ``max_rows``: the most rows one forward receives (a single larger job
    still runs, alone). ``stats`` counts forwards, rows and jobs, and sums the seconds jobs waited
    in the queue and forwards ran (benchmarks report rows per forward and where the time goes).
    """

    def __init__(self, forward: Callable[[list], Sequence[Any]], *, window_ms: float = 5.0,
                 max_rows: int = 64, name: str = "model", after: Priority | None = None,
                 max_yield_s: float = 0.0):
        if window_ms < 0 or max_rows < 1:
            raise ValueError(f"window_ms must be >= 0 and max_rows >= 1, got {window_ms}, {max_rows}")
        self.forward, self.window_s, self.max_rows, self.name = forward, window_ms / 1000.0, max_rows, name
        self.after, self.max_yield_s = after, max_yield_s
        """Work that goes first: before each forward the worker waits (at most ``max_yield_s``)
        until ``after`` is idle, while more jobs gather."""
        self._cond = threading.Condition()
        self._pending: deque[_Job] = deque()
        self._closed = False
        self._worker: threading.Thread | None = None
        self.stats = {"forwards": 0, "rows": 0, "jobs": 0, "wait_s": 0.0, "forward_s": 0.0}

    # --- callers ------------------------------------------------------------------------------------

    def submit(self, rows: Sequence[Any]) -> list:
        """This caller's rows through the next gathered forward; blocks until they are done and
        returns their results in order, or raises the exception their forward raised."""
        rows = list(rows)
        if not rows:
            return []
        if threading.current_thread() is self._worker:  # forward calling its own queue: no deadlock
            return self._checked(rows, self.forward(rows))
        job = _Job(rows)
        with self._cond:
            if self._closed:
                raise BatcherClosed(f"the {self.name} queue is closed: the server is stopping; retry on a running server")
            self._pending.append(job)
            self._start_worker()
            self._cond.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop: the running forward finishes, waiting jobs fail with :class:`BatcherClosed`."""
        with self._cond:
            self._closed = True
            waiting, self._pending = list(self._pending), deque()
            self._cond.notify_all()
        for job in waiting:
            job.settle(error=BatcherClosed(f"the {self.name} queue closed before this request ran; retry"))
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=timeout_s)

    # --- the worker ---------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        """Started on the first submit (under the condition's lock), so an unused queue costs nothing."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name=f"recsage-batch-{self.name}", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        while (batch := self._gather()) is not None:
            start = time.monotonic()
            self.stats["forwards"] += 1
            self.stats["jobs"] += len(batch)
            self.stats["rows"] += sum(len(job.rows) for job in batch)
            self.stats["wait_s"] += sum(start - job.arrived for job in batch)
            self._forward(batch)
            self.stats["forward_s"] += time.monotonic() - start

    def _gather(self) -> list[_Job] | None:
        """The next batch: the oldest job plus whatever arrives until its window ends or the rows
        fill ``max_rows``; None once closed."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            oldest = self._pending[0].arrived if self._pending else time.monotonic()
        if self.after is not None:  # outside the lock: callers keep submitting meanwhile
            self.after.wait_older(oldest, self.max_yield_s)
        with self._cond:
            if self._closed:  # else the oldest job is still there: only this worker takes jobs
                return None
            deadline = self._pending[0].arrived + self.window_s
            while (not self._closed and self._waiting_rows() < self.max_rows
                   and (left := deadline - time.monotonic()) > 0):
                self._cond.wait(left)
            if self._closed:
                return None
            batch = [self._pending.popleft()]
            rows = len(batch[0].rows)
            while self._pending and rows + len(self._pending[0].rows) <= self.max_rows:
                rows += len(self._pending[0].rows)
                batch.append(self._pending.popleft())
            return batch

    def _waiting_rows(self) -> int:
        return sum(len(job.rows) for job in self._pending)

    def _forward(self, batch: list[_Job]) -> None:
        rows = [row for job in batch for row in job.rows]
        try:
            results = self._checked(rows, self.forward(rows))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller(s) that caused it
            if len(batch) == 1:
                batch[0].settle(error=exc)
            else:  # whose rows failed? run each job alone: only that caller gets the exception
                for job in batch:
                    self._forward([job])
            return
        start = 0
        for job in batch:
            job.settle(result=results[start: start + len(job.rows)])
            start += len(job.rows)

    def _checked(self, rows: list, results: Sequence[Any]) -> list:
        results = list(results)
        if len(results) != len(rows):
            raise RuntimeError(f"the {self.name} model returned {len(results)} results for {len(rows)} rows")
        return results


class Priority:
    """Work in progress that a queue lets go first (``MicroBatcher(after=...)``): chat turns hold it
    while they choose a tool and rank, so explanations, which only matter once items are shown,
    do not take the model from the rankings of chats that arrived before them. Work that started
    after a job arrived does not hold that job back, so a steady stream of new chats never starves it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._started: dict[int, float] = {}
        self._next = 0

    @property
    def active(self) -> int:
        return len(self._started)

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._cond:
            key, self._next = self._next, self._next + 1
            self._started[key] = time.monotonic()
        try:
            yield
        finally:
            with self._cond:
                del self._started[key]
                self._cond.notify_all()

    def wait_older(self, since: float, max_wait_s: float) -> bool:
        """Wait until no work that started before ``since`` (monotonic seconds) still holds it, at
        most ``max_wait_s``; True when none does."""
        with self._cond:
            return self._cond.wait_for(lambda: all(start > since for start in self._started.values()),
                                       timeout=max_wait_s)


RANKING = Priority()
"""Chat turns choosing a tool and ranking (agent/chat/agent.py); the explanation queue waits for it."""
