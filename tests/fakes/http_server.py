"""Fakes and raw-socket helpers for tests/security/test_http_edge.py: chat turns that take time
between their events (as model work does) and record how they ended, and HTTP written by hand
so a test controls exactly which body bytes are sent and when."""

from __future__ import annotations

import socket
import sys
import threading
import time
from urllib.parse import urlsplit

from agent.core.config import Settings
from agent.core.errors import InputError
from agent.server.app import create_app
from tests.fakes.server import FakeChatAgent, FakeRecommender, FakeSession

STEPS, STEP_S = 200, 0.05
"""A "steps" turn: this many events, with this much work before each."""


class StepSession(FakeSession):
    """``steps``: a long turn of short steps; ``hang``: one event, then one step of a minute (a
    long forward pass); anything else: the fake's normal turn. Every generator is kept, so only an
    explicit ``close()`` (never garbage collection) can end a turn early."""

    def __init__(self, recommender, user):
        super().__init__(recommender, user)
        self.steps = 0
        self.closed = threading.Event()
        self.closed_in: str | None = None
        self.generators: list = []

    def send(self, text, image=None, audio=None):
        if text.strip() not in ("steps", "hang"):
            return super().send(text, image, audio)
        generator = self._long_turn(text.strip())
        self.generators.append(generator)
        return generator

    def _long_turn(self, kind: str):
        try:
            yield {"type": "tool", "name": "recommend", "arguments": {}}
            for i in range(STEPS if kind == "steps" else 1):
                time.sleep(STEP_S if kind == "steps" else 60)
                self.steps += 1
                yield {"type": "token", "text": f"{i} "}
            yield {"type": "done", "answer": "done", "items": [], "tool": "recommend"}
        finally:
            self.closed_in = threading.current_thread().name
            self.closed.set()


class StepAgent(FakeChatAgent):
    def __init__(self, recommender):
        super().__init__(recommender)
        self.sessions: list[StepSession] = []

    def session(self, user=None):
        session = StepSession(self.recommender, user)
        self.sessions.append(session)
        return session


class PathLeakingRecommender(FakeRecommender):
    """A converter error that names the file it could not read, as real decoders do."""

    def recommend(self, *, image=None, **kwargs):
        if image is not None:
            raise InputError(f"cannot decode the image {image}: not an image file")
        return super().recommend(image=image, **kwargs)


def step_app(token: str | None = None, **settings):
    recommender = FakeRecommender()
    agent = StepAgent(recommender)
    return create_app(recommender, agent, Settings(**settings), token=token), agent


def serve_slow(port: int) -> None:
    """`recsage serve`'s uvicorn setup over the step fakes (the SIGTERM test runs it in a subprocess)."""
    from agent.cli.serve import run_server

    app, _ = step_app(shutdown_timeout_s=1.0)
    run_server(app, "127.0.0.1", port, app.state.recsage.settings, log_level="warning")


def connect(url: str, timeout_s: float = 5.0) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout_s)


def send_head(sock: socket.socket, method: str, path: str, headers: dict[str, str]) -> None:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock.sendall("\r\n".join(lines).encode())


def try_send(sock: socket.socket, data: bytes) -> bool:
    """Send unless the server already closed the connection (it may answer before the body ends)."""
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


def read_response(sock: socket.socket, timeout_s: float) -> tuple[int, bytes]:
    """The status and what arrived of the response within ``timeout_s`` (socket.timeout past it)."""
    sock.settimeout(timeout_s)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), None)
    while length is not None and len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(head.split()[1]), rest


def read_until(sock: socket.socket, marker: bytes, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


if __name__ == "__main__":
    serve_slow(int(sys.argv[1]))
