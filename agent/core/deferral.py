"""Model work a caller asks to run after the call that wanted it: a chat turn shows the ranked items
first and explains them afterwards.

The chat agent runs a tool inside :func:`deferring`; a model front that sees :func:`current` return a
:class:`Deferred` (the server's explainer front, :mod:`agent.server.queues`) records its call there
instead of running it and answers "nothing yet"; the agent then runs the recorded calls itself,
one at a time, and streams each one's results as soon as they are done. Outside :func:`deferring`
nothing is deferred. A context variable, so concurrent turns in other threads never see each
other's deferrals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_CURRENT: ContextVar[Deferred | None] = ContextVar("recsage_deferred", default=None)


class Deferred:
    """Calls recorded while deferring: each ``run(rows) -> results`` with its rows."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[[list], Sequence[Any]], list]] = []

    def add(self, run: Callable[[list], Sequence[Any]], rows: Sequence[Any]) -> None:
        self.calls.append((run, list(rows)))

    def run(self) -> Iterator[tuple[list, list]]:
        """Run the recorded calls in order, yielding (rows, results) as each one finishes."""
        calls, self.calls = self.calls, []
        for run, rows in calls:
            yield rows, list(run(rows))


def current() -> Deferred | None:
    """The deferral in force in this thread's context, if any."""
    return _CURRENT.get()


@contextmanager
def deferring() -> Iterator[Deferred]:
    deferred = Deferred()
    token = _CURRENT.set(deferred)
    try:
        yield deferred
    finally:
        _CURRENT.reset(token)
