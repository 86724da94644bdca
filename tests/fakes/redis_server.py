"""A real `redis-server` on a free loopback port for the session-store tests: no persistence, its own
folder, stopped after the test. Skipped, with the reason, where the redis-server binary (Debian:
`apt-get install redis-server`) or the redis package (`pip install 'recsage[redis]'`) is missing.

A test module wraps :func:`running_redis` in its own fixture (module- or function-scoped, as it needs).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes.store import free_port


def needs_redis():
    """The redis module, or a skip naming what to install."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    return pytest.importorskip("redis", reason="the redis package is not installed (pip install 'recsage[redis]')")


@contextmanager
def running_redis(folder: Path, start_s: float = 30.0) -> Iterator[str]:
    """A redis-server in ``folder``; yields its URL (database 0)."""
    redis = needs_redis()
    port = free_port()
    log = (folder / "redis.log").open("w")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)], stdout=log, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client, deadline = redis.Redis.from_url(url, socket_connect_timeout=1), time.time() + start_s
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(f"redis-server did not start: {(folder / 'redis.log').read_text()[-2000:]}")
                time.sleep(0.1)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
