"""Deferred model calls: recorded only inside ``deferring``, run later in order, per thread."""

from __future__ import annotations

import threading

from agent.core import deferral


def test_calls_are_recorded_inside_deferring_and_run_later_in_order():
    assert deferral.current() is None
    with deferral.deferring() as later:
        assert deferral.current() is later
        later.add(lambda rows: [r.upper() for r in rows], ["a", "b"])
        later.add(lambda rows: [len(r) for r in rows], ["ccc"])
    assert deferral.current() is None
    assert list(later.run()) == [(["a", "b"], ["A", "B"]), (["ccc"], [3])]
    assert later.calls == []  # run once


def test_another_thread_does_not_see_this_threads_deferral():
    seen = []
    with deferral.deferring():
        worker = threading.Thread(target=lambda: seen.append(deferral.current()))
        worker.start()
        worker.join()
    assert seen == [None]
