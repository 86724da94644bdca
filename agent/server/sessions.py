"""The chat-session store behind ``/v1/chat``: sessions by id, least recently used dropped first,
and a per-session hold so only one turn answers in a session at a time."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SessionEntry:
    """A chat session and who is answering in it. A turn holds it until its generator is closed
    (the server closes it when the response ends, the client goes or the time runs out), and for
    at most ``lease_s``: a hold somehow never released is taken over, not kept forever (the session
    itself then refuses a second turn while the first really runs)."""

    session: Any
    holder: object | None = None
    since: float = 0.0
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
    """Chat sessions by id for /v1/chat, the least recently used dropped past ``capacity``."""

    def __init__(self, agent, capacity: int):
        self.agent, self.capacity = agent, capacity
        self.entries: OrderedDict[str, SessionEntry] = OrderedDict()
        self.guard = threading.Lock()

    def open(self, session_id: str | None, user: str | None) -> tuple[str, SessionEntry]:
        """The session with this id, or a new one (unknown or expired ids start afresh)."""
        with self.guard:
            if session_id in self.entries:
                self.entries.move_to_end(session_id)
                return session_id, self.entries[session_id]
        entry = SessionEntry(self.agent.session(user))  # outside the guard: may load models
        new_id = uuid.uuid4().hex
        with self.guard:
            self.entries[new_id] = entry
            while len(self.entries) > self.capacity:
                self.entries.popitem(last=False)
        return new_id, entry

    def drop(self, session_id: str) -> bool:
        with self.guard:
            return self.entries.pop(session_id, None) is not None
