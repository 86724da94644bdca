"""The chat-session store: holds on a session and their lease."""

from __future__ import annotations

from agent.server.sessions import SessionEntry


def test_a_stale_session_hold_is_taken_over():
    entry = SessionEntry(session=None)
    first = entry.acquire(lease_s=60)
    assert first is not None and entry.acquire(lease_s=60) is None
    second = entry.acquire(lease_s=0)  # the first holder's lease has run out
    assert second is not None
    entry.release(first)  # a late release by the old holder does not free the new one
    assert entry.acquire(lease_s=60) is None
    entry.release(second)
    assert entry.acquire(lease_s=60) is not None
