"""What ``recsage bench abuse`` needs to attack a real server: the server process with its memory
sampled from /proc, raw HTTP for bodies no ordinary client sends, and hostile inputs (lying WAV and
PNG headers, a private file on the server's disk). Every connection goes to 127.0.0.1 only."""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.core.errors import RecsageError

SECRET = "ZEBRA QUARTZ HARBOR"
"""Printed on the image whose server path the chat attack names; it must never come back."""
MB = 1_000_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / MB
    return float("nan")


class PeakRss:
    """Highest resident memory of a process while the ``with`` block runs, sampled every 20 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (FileNotFoundError, ProcessLookupError):
                return
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self.before = rss_mb(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class ServerProcess:
    """``recsage serve`` in a child process with a bearer token, on a free loopback port."""

    project: Path
    config: Path | None = None
    token: str = field(default_factory=lambda: os.urandom(12).hex())

    def __enter__(self) -> ServerProcess:
        self.port = _free_port()
        cmd = [sys.executable, "-m", "agent.cli.main"]
        cmd += ["--config", str(self.config)] if self.config else []
        cmd += ["--project", str(self.project), "serve", "--port", str(self.port), "--token", self.token]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready(deadline=time.monotonic() + 600)
        return self

    def _wait_ready(self, deadline: float) -> None:
        import httpx

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RecsageError(f"`recsage serve` exited with {self.proc.returncode}:\n"
                                   f"{self.log.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RecsageError("`recsage serve` did not answer /healthz within 10 minutes")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Recsage-Client": "bench-abuse"}


# --- raw HTTP, for bodies no ordinary client sends ---------------------------------------------


def raw_request(port: int, head: str, chunks: Iterator[bytes], pause_s: float = 0.0,
                answer_timeout_s: float = 120.0) -> tuple[int | None, float, int]:
    """Send ``head`` then ``chunks`` (pausing ``pause_s`` between them) until the server answers or
    hangs up; returns (status, seconds until the answer, body bytes sent)."""
    start, sent = time.perf_counter(), 0
    with socket.create_connection(("127.0.0.1", port), timeout=answer_timeout_s) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered before reading everything
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
            if pause_s:
                time.sleep(pause_s)
        status = _read_status(sock, answer_timeout_s)
    return status, time.perf_counter() - start, sent


def _read_status(sock: socket.socket, timeout_s: float) -> int | None:
    sock.settimeout(timeout_s)
    try:
        line = sock.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError:
        return None
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def zero_blocks(total: int, size: int = MB) -> Iterator[bytes]:
    block = b"\0" * size
    for start in range(0, total, size):
        yield block[: min(size, total - start)]


def chunked_frames(total: int, size: int = MB) -> Iterator[bytes]:
    for block in zero_blocks(total, size):
        yield f"{len(block):x}\r\n".encode() + block + b"\r\n"
    yield b"0\r\n\r\n"


# --- inputs ------------------------------------------------------------------------------------


def lying_wav(sample_rate: int, n_bytes: int = 96_000) -> bytes:
    """A mono 16-bit PCM WAV of ``n_bytes`` samples whose header claims ``sample_rate``."""
    header = b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, sample_rate, (sample_rate * 2) & 0xFFFFFFFF, 2, 16) + b"data" + struct.pack("<I", n_bytes)
    return header + os.urandom(n_bytes)


def huge_png_header(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels (the data is one tiny image)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def secret_png(folder: Path) -> Path:
    """A poster-like PNG with :data:`SECRET` printed large, on the server's disk."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (900, 200), "white")
    ImageDraw.Draw(image).text((20, 60), SECRET, fill="black", font=ImageFont.load_default(size=56))
    path = folder / "private_note.png"
    image.save(path)
    return path
