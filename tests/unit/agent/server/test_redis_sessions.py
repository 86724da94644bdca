"""The Redis session store against a real redis-server (tests/fakes/redis_server.py): two stores over
one Redis play two replicas, with the real ChatAgent on a fake recommender (no model)."""

from __future__ import annotations

import json
import logging
import time

import pytest
from fastapi.testclient import TestClient

from agent.core.config import Settings
from agent.server.app import create_app
from agent.server.redis_sessions import RedisSessions
from tests.fakes.chat import fake_agent
from tests.fakes.redis_server import running_redis

pytestmark = pytest.mark.integration  # a real redis-server process


@pytest.fixture
def redis_url(tmp_path):
    with running_redis(tmp_path) as url:
        yield url


def replica(url: str, ttl_s: float = 60.0) -> RedisSessions:
    """One replica's store: its own ChatAgent and its own Redis connection."""
    return RedisSessions(fake_agent(Settings(chat_explain=False)), url, ttl_s)


def turn(store: RedisSessions, session_id: str | None, text: str) -> tuple[str, dict]:
    """One turn as /v1/chat runs it: open, claim, stream, release."""
    session_id, entry = store.open(session_id, None)
    token = entry.acquire(lease_s=30)
    assert token is not None
    try:
        events = list(entry.session.send(text))
    finally:
        entry.release(token)
    assert events[-1]["type"] == "done"
    return session_id, events[-1]


def ids(done: dict) -> list[str]:
    return [i["id"] for i in done["items"]]


def test_a_conversation_moves_between_replicas(redis_url):
    a, b = replica(redis_url), replica(redis_url)
    session_id, first = turn(a, None, "funny animated movies about toys")
    assert len(ids(first)) >= 3
    same, second = turn(b, session_id, "not the second one")
    assert same == session_id
    assert ids(first)[1] not in ids(second) and ids(first)[0] in ids(second)
    assert b.agent.recommender.calls[-1]["exclude"] == [ids(first)[1]]
    assert b.agent.recommender.calls[-1]["query"].startswith("funny animated")  # the request came along
    _, third = turn(a, session_id, "more like the first one")
    assert third["tool"] == "similar_items" and a.agent.recommender.calls[-1]["history"] == [ids(second)[0]]
    stored = json.loads(a.client.get(a.key(session_id, "state")))
    assert [t["role"] for t in stored["turns"]] == ["user", "assistant"] * 3
    assert stored["excluded"] == [ids(first)[1]] and a.client.get(a.key(session_id, "lock")) is None


def test_a_turn_on_one_replica_blocks_the_session_on_the_other(redis_url):
    a, b = replica(redis_url), replica(redis_url)
    session_id, _ = a.open(None, None)
    _, on_a = a.open(session_id, None)
    _, on_b = b.open(session_id, None)
    token = on_a.acquire(lease_s=30)
    assert token is not None and on_b.acquire(lease_s=30) is None
    assert not b.release(session_id, "not-the-owner", "")  # only the owner frees the claim
    assert a.client.get(a.key(session_id, "lock")) == token
    on_a.release(token)
    assert on_b.acquire(lease_s=30) is not None


def test_a_lapsed_claim_is_taken_over_and_its_late_release_changes_nothing(redis_url):
    a, b = replica(redis_url), replica(redis_url)
    session_id, _ = turn(a, None, "funny animated movies about toys")
    _, stale = a.open(session_id, None)
    old = stale.acquire(lease_s=0.2)
    time.sleep(0.4)
    _, fresh = b.open(session_id, None)
    new = fresh.acquire(lease_s=30)
    assert new is not None
    stale.session.state.query = "written by the lapsed turn"
    stale.release(old)
    assert a.client.get(a.key(session_id, "lock")) == new
    assert json.loads(a.client.get(a.key(session_id, "state")))["query"] == "funny animated movies about toys"


def test_sessions_expire_after_the_ttl_of_their_last_use(redis_url):
    store = replica(redis_url, ttl_s=1.0)
    session_id, _ = turn(store, None, "funny animated movies about toys")
    assert 0 < store.client.pttl(store.key(session_id, "state")) <= 1000
    time.sleep(1.3)
    new_id, entry = store.open(session_id, None)
    assert new_id != session_id and entry.session.state.query == ""


def test_a_dropped_session_stays_dropped_even_mid_turn(redis_url):
    a, b = replica(redis_url), replica(redis_url)
    session_id, _ = turn(a, None, "funny animated movies about toys")
    _, entry = a.open(session_id, None)
    token = entry.acquire(lease_s=30)
    assert b.drop(session_id) and not b.drop(session_id)
    entry.release(token)  # the turn ends after the delete: it must not bring the session back
    assert a.client.exists(a.key(session_id, "state")) == 0
    assert a.open(session_id, None)[0] != session_id


def test_an_unreadable_stored_state_starts_the_session_afresh(redis_url, caplog):
    store = replica(redis_url)
    session_id, _ = turn(store, None, "funny animated movies about toys")
    store.client.set(store.key(session_id, "state"), json.dumps({"format": 99}))
    _, entry = store.open(session_id, None)
    with caplog.at_level(logging.WARNING, logger="recsage.server"):
        token = entry.acquire(lease_s=30)
    assert token is not None and entry.session.state.query == ""
    assert "unreadable" in caplog.text and "format 1" in caplog.text


def sse_events(text: str) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


def test_two_apps_share_chats_through_redis(redis_url):
    settings = Settings(session_store=redis_url, chat_explain=False)
    a, b = (TestClient(create_app(agent.recommender, agent, settings), base_url="http://127.0.0.1",
                       headers={"X-Recsage-Client": "1"})
            for agent in (fake_agent(settings), fake_agent(settings)))
    first = sse_events(a.post("/v1/chat", json={"message": "funny animated movies about toys"}).text)
    session_id, shown = first[0]["session_id"], ids(first[-1])
    second = sse_events(b.post("/v1/chat", json={"message": "not the second one", "session_id": session_id}).text)
    assert second[0]["session_id"] == session_id and second[-1]["type"] == "done"
    assert shown[1] not in ids(second[-1]) and shown[0] in ids(second[-1])
    assert b.delete(f"/v1/chat/{session_id}").status_code == 200
    assert a.delete(f"/v1/chat/{session_id}").status_code == 404
