"""Chat sessions in Redis (``session_store = "redis://host:port/db"``): any replica continues any
conversation, because no replica keeps a session between turns.

A session is two keys. ``<prefix><id>:state`` holds its state as JSON (never pickle: a replica must
not run what another wrote), expiring ``chat_session_ttl_s`` after its last use. The chat agent is
passed in (agent.server does not import agent.chat): a session's ``state`` is written with its
``to_dict()`` and read back with its class's ``from_dict()`` (:class:`agent.chat.state.ChatState`). ``<prefix><id>:lock`` is the busy claim of the turn running in it, on whichever replica: a
random token set only if absent (SET NX PX), so a replica that dies mid-turn frees the session when
the lease runs out. One script releases the claim and saves the turn's state in the same atomic step,
and only while the claim still holds the releasing turn's token: a turn whose lease ran out and was
taken over never deletes the newer claim nor overwrites the newer state, and a session deleted
mid-turn stays deleted (the save uses XX: only an existing key is written).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.core.errors import InputError, RecsageError, require

KEY_PREFIX = "recsage:chat:"
log = logging.getLogger("recsage.server")

_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3], 'XX')
end
return 1
"""
"""KEYS: the claim, the state; ARGV: the owner's token, the state JSON ('' = do not save), its TTL in ms."""


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class RedisSessions:
    """The session store over one Redis database; ``client`` is for tests (a ready redis client)."""

    def __init__(self, agent, url: str, ttl_s: float, prefix: str = KEY_PREFIX, client: Any = None):
        redis = require("redis", "redis")
        self.agent, self.where, self.prefix = agent, redacted(url), prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.errors = (redis.RedisError, OSError)
        self.client = client or redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5,
                                                     socket_timeout=10, health_check_interval=30)
        self.call(self.client.ping)  # refuse to start on a wrong URL rather than fail the first chat
        self.release_script = self.client.register_script(_RELEASE)

    def call(self, method, *args, **kwargs):
        """A Redis command; an unreachable Redis is a RecsageError (HTTP 503) that names it."""
        try:
            return method(*args, **kwargs)
        except self.errors as exc:
            raise RecsageError(f"the chat session store {self.where} did not answer ({type(exc).__name__}: {exc}); "
                               "check that Redis runs there, or set session_store = \"memory\"") from None

    def key(self, session_id: str, part: str) -> str:
        return f"{self.prefix}{session_id}:{part}"

    def open(self, session_id: str | None, user: str | None) -> tuple[str, RedisEntry]:
        """An existing session (its expiry restarts now), or a new one stored with a fresh state."""
        if session_id and self.call(self.client.pexpire, self.key(session_id, "state"), self.ttl_ms):
            return session_id, RedisEntry(self, session_id, self.agent.session(None))  # state: read at acquire
        session = self.agent.session(user)
        new_id = uuid.uuid4().hex
        self.call(self.client.set, self.key(new_id, "state"), dump_state(session.state), px=self.ttl_ms)
        return new_id, RedisEntry(self, new_id, session)

    def drop(self, session_id: str) -> bool:
        return bool(self.call(self.client.delete, self.key(session_id, "state"), self.key(session_id, "lock")))

    def load(self, session_id: str, state_type: type) -> Any:
        """The stored state as a ``state_type``; None when it is gone or unreadable (logged: the
        session starts afresh)."""
        raw = self.call(self.client.get, self.key(session_id, "state"))
        if raw is None:
            return None
        try:
            return state_type.from_dict(json.loads(raw))
        except (ValueError, InputError) as exc:  # another version's or a damaged value
            log.warning("chat session %s: stored state unreadable (%s); starting afresh", session_id, exc)
            return None

    def release(self, session_id: str, token: str, state_json: str) -> bool:
        """Free the claim if ``token`` still owns it, saving ``state_json`` ('' saves nothing)."""
        keys = [self.key(session_id, "lock"), self.key(session_id, "state")]
        return bool(self.call(self.release_script, keys=keys, args=[token, state_json, self.ttl_ms]))


def dump_state(state) -> str:
    return json.dumps(state.to_dict(), ensure_ascii=False)


class RedisEntry:
    """One request's view of a stored session: ``acquire`` claims it and reads its state, ``release``
    saves the state and frees the claim (called as the turn's stream closes, in the stream's thread)."""

    def __init__(self, store: RedisSessions, session_id: str, session):
        self.store, self.session_id, self.session = store, session_id, session

    def acquire(self, lease_s: float) -> str | None:
        """A token owning the session for at most ``lease_s`` seconds, or None while another turn
        (on any replica) holds it. The state is read after the claim, so it is the last turn's."""
        store, token = self.store, uuid.uuid4().hex
        claimed = store.call(store.client.set, store.key(self.session_id, "lock"), token, nx=True,
                             px=max(1, int(lease_s * 1000)))
        if not claimed:
            return None
        try:
            state = store.load(self.session_id, type(self.session.state))
        except BaseException:
            self._free(token, "")
            raise
        if state is not None:
            self.session.state = state
        return token

    def release(self, token: str) -> None:
        """Never raises: it runs as a stream closes, where nobody could answer an error."""
        try:
            state_json = dump_state(self.session.state)
        except (TypeError, ValueError) as exc:
            log.error("chat session %s: its state is not JSON-safe (%s); not saved", self.session_id, exc)
            state_json = ""
        self._free(token, state_json)

    def _free(self, token: str, state_json: str) -> None:
        try:
            if not self.store.release(self.session_id, token, state_json):
                log.warning("chat session %s: the turn's claim had expired or the session was deleted; "
                            "this turn's state was not saved", self.session_id)
        except RecsageError as exc:
            log.error("chat session %s: %s", self.session_id, exc)
