"""A real `chroma run` server on a free loopback port (Chroma's client/server mode: the one several
processes may share), stopped when the block ends."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes.store import free_port

BIN = Path(sys.executable).parent


@contextmanager
def running_chroma(folder: Path, start_s: float = 60.0) -> Iterator[str]:
    """`chroma run` over ``folder``; yields its URL."""
    port = free_port()
    proc = subprocess.Popen([str(BIN / "chroma"), "run", "--path", str(folder), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + start_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"`chroma run` did not start within {start_s:.0f} s")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
