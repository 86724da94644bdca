"""The chat-session store: holds on a session and their lease, the in-memory store's capacity and
expiry, and choosing a store from the settings (the Redis store itself: tests/unit/agent/server/test_redis_sessions.py)."""

from __future__ import annotations

import sys

import pytest

from agent.core.config import Settings, load_settings
from agent.core.errors import InputError, MissingDependency, RecsageError
from agent.server import sessions
from agent.server.sessions import ChatSessions, SessionEntry, open_session_store


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


class CountingAgent:
    def __init__(self):
        self.made = 0

    def session(self, user=None):
        self.made += 1
        return {"user": user, "n": self.made}


def test_the_memory_store_continues_a_session_by_id_and_starts_unknown_ones_afresh():
    store = ChatSessions(CountingAgent(), capacity=10)
    first_id, first = store.open(None, "u")
    again_id, again = store.open(first_id, None)
    assert again_id == first_id and again is first
    other_id, other = store.open("no-such-id", "v")
    assert other_id not in (first_id, "no-such-id") and other.session == {"user": "v", "n": 2}


def test_the_memory_store_drops_the_least_recently_used_past_capacity():
    store = ChatSessions(CountingAgent(), capacity=2)
    a, _ = store.open(None, None)
    b, _ = store.open(None, None)
    store.open(a, None)  # a used after b: b is the least recently used
    store.open(None, None)
    assert a in store.entries and b not in store.entries and len(store.entries) == 2


def test_the_memory_store_expires_sessions_unused_for_the_ttl(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(sessions.time, "monotonic", lambda: clock[0])
    store = ChatSessions(CountingAgent(), capacity=10, ttl_s=60)
    old, _ = store.open(None, None)
    clock[0] += 50
    kept, _ = store.open(None, None)
    clock[0] += 20  # old: unused for 70 s; kept: 20 s
    again_id, _ = store.open(kept, None)
    assert again_id == kept and old not in store.entries
    new_id, entry = store.open(old, None)
    assert new_id != old and entry.session["n"] == 3
    assert store.drop(kept) and not store.drop(kept)


def test_settings_name_the_store_and_refuse_other_urls():
    assert Settings().session_store == "memory"
    assert Settings(session_store=" redis://cache:6379/2 ").session_store == "redis://cache:6379/2"
    with pytest.raises(InputError, match="session_store.*Redis URL"):
        load_settings(session_store="http://cache:6379")
    store = open_session_store(CountingAgent(), Settings(chat_sessions_max=3, chat_session_ttl_s=5))
    assert isinstance(store, ChatSessions) and (store.capacity, store.ttl_s) == (3, 5)


def test_a_redis_store_without_the_redis_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ImportError
    with pytest.raises(MissingDependency, match=r"pip install 'recsage\[redis\]'"):
        open_session_store(CountingAgent(), Settings(session_store="redis://127.0.0.1:1/0"))


def test_a_redis_url_that_does_not_answer_is_named_without_its_password():
    pytest.importorskip("redis", reason="the redis package is not installed (pip install 'recsage[redis]')")
    with pytest.raises(RecsageError, match=r"redis://me:\*\*\*@127.0.0.1:1/0 did not answer") as info:
        open_session_store(CountingAgent(), Settings(session_store="redis://me:hunter2@127.0.0.1:1/0"))
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_serve_refuses_a_session_store_that_is_not_a_redis_url(tmp_path, monkeypatch, how):
    from click.testing import CliRunner

    from agent.cli.main import cli

    monkeypatch.delenv("RECSAGE_SESSION_STORE", raising=False)
    args = ["serve", "--store", str(tmp_path), "--no-warm"]
    if how == "flag":
        args += ["--session-store", "http://cache:6379"]
    else:
        monkeypatch.setenv("RECSAGE_SESSION_STORE", "http://cache:6379")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "session_store" in result.output and "Redis URL" in result.output
    assert "Traceback" not in result.output
