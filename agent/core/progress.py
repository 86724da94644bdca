"""The one progress display of every long loop (ingest, benchmarks): a rich bar on stderr.

A bar is drawn only when stderr is a terminal. A log file or CI output cannot redraw one, so there
a loop prints nothing, or one plain line per step where the loop asks for it (ingest and the
trainers do: their logs should say how far a killed run got).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def progress_bar(description: str, total: int | None, plain_line: Callable[[int, int | None], str] | None = None,
                 initial: int = 0, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, **notes)``, which moves the bar on by ``n`` steps out of ``total`` and
    shows ``notes`` after it (``advance(1, loss="0.41")``); ``initial`` steps count as done (a
    resumed run). ``enabled=False`` shows nothing anywhere.

    Off a terminal, ``advance`` prints ``plain_line(done, total)`` and the notes to stderr when a
    ``plain_line`` is given, and nothing otherwise."""
    from rich.console import Console

    console = Console(stderr=True)
    if not enabled:
        yield lambda n=1, **notes: None
        return
    if not console.is_terminal:
        done = initial

        def advance_plain(n: int = 1, **notes) -> None:
            nonlocal done
            done += n
            if plain_line is not None:
                line = " ".join([plain_line(done, total), *(f"{k}={v}" for k, v in notes.items())])
                print(line, file=sys.stderr, flush=True)

        yield advance_plain
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[notes]}", markup=False), console=console, transient=False,
    ) as bar:
        task = bar.add_task(description, total=total, completed=initial, notes="")

        def advance_bar(n: int = 1, **notes) -> None:
            if notes:
                bar.update(task, advance=n, notes=" ".join(f"{k}={v}" for k, v in notes.items()))
            else:
                bar.advance(task, n)

        yield advance_bar


def progress(iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """``iterable``'s items, with a bar on a terminal (``total`` defaults to ``len(iterable)``)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with progress_bar(description, total) as advance:
        for value in iterable:
            yield value
            advance(1)
