"""The chat-session store behind ``/v1/chat``: sessions by id, expired after ``chat_session_ttl_s``
unused, and a per-session hold so only one turn answers in a session at a time.

Two stores, one contract (``open``, ``drop``; an entry's ``session``, ``acquire`` and ``release``):
``session_store = "memory"`` keeps live sessions in this process (least recently used dropped past
``chat_sessions_max``); ``"redis://..."`` keeps each session's state as JSON in Redis
(:mod:`agent.server.redis_sessions`), so any replica continues any conversation.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.core.config import Settings


class SessionStore(Protocol):
    def open(self, session_id: str | None, user: str | None) -> tuple[str, Any]:
        """The session with this id, or a new one with a new id (unknown or expired ids start afresh)."""

    def drop(self, session_id: str) -> bool:
        """Forget a session; False when there was none."""


def open_session_store(agent, settings: Settings) -> SessionStore:
    """The store ``settings.session_store`` names."""
    if settings.session_store == "memory":
        return ChatSessions(agent, settings.chat_sessions_max, settings.chat_session_ttl_s)
    from agent.server.redis_sessions import RedisSessions

    return RedisSessions(agent, settings.session_store, settings.chat_session_ttl_s)


@dataclass
class SessionEntry:
    """A chat session and who is answering in it. A turn holds it until its generator is closed
    (the server closes it when the response ends, the client goes or the time runs out), and for
    at most ``lease_s``: a hold somehow never released is taken over, not kept forever (the session
    itself then refuses a second turn while the first really runs)."""

    session: Any
    holder: object | None = None
    since: float = 0.0
    used: float = 0.0
    """When it was last opened (``time.monotonic``): sessions unused for the TTL expire."""
    guard: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, lease_s: float) -> object | None:
        with self.guard:
            if self.holder is not None and time.monotonic() - self.since < lease_s:
                return None
            self.holder, self.since = object(), time.monotonic()
            return self.holder

    def release(self, holder: object) -> None:
        with self.guard:
            if self.holder is holder:
                self.holder = None


class ChatSessions:
    """The in-process store: live sessions by id, the least recently used dropped past ``capacity``
    and any unused for ``ttl_s`` seconds dropped when the store is next opened."""

    def __init__(self, agent, capacity: int, ttl_s: float = float("inf")):
        self.agent, self.capacity, self.ttl_s = agent, capacity, ttl_s
        self.entries: OrderedDict[str, SessionEntry] = OrderedDict()
        self.guard = threading.Lock()

    def open(self, session_id: str | None, user: str | None) -> tuple[str, SessionEntry]:
        """The session with this id, or a new one (unknown or expired ids start afresh)."""
        with self.guard:
            self._expire(time.monotonic())
            if session_id in self.entries:
                entry = self.entries[session_id]
                entry.used = time.monotonic()
                self.entries.move_to_end(session_id)
                return session_id, entry
        entry = SessionEntry(self.agent.session(user), used=time.monotonic())  # outside the guard: may load models
        new_id = uuid.uuid4().hex
        with self.guard:
            self.entries[new_id] = entry
            while len(self.entries) > self.capacity:
                self.entries.popitem(last=False)
        return new_id, entry

    def _expire(self, now: float) -> None:
        """Drop sessions unused for ``ttl_s``; the dict is in order of last use, so stop at the first fresh one."""
        while self.entries:
            oldest = next(iter(self.entries.values()))
            if now - oldest.used <= self.ttl_s:
                return
            self.entries.popitem(last=False)

    def drop(self, session_id: str) -> bool:
        with self.guard:
            return self.entries.pop(session_id, None) is not None
