"""What the HTTP server does around the models: size-limited uploads into temporary files, blocking
model work moved off the event loop under a time limit, and errors as JSON with the right status.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from agent.core.errors import InputError

T = TypeVar("T")
CHUNK = 1 << 16
SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)$", re.DOTALL)


class ApiError(Exception):
    """An HTTP answer other than 200 whose message says what was wrong and what to do."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind

    def body(self) -> dict:
        return error_body(self.message, self.kind)


def error_body(message: str, kind: str = "invalid_request_error", **extra: Any) -> dict:
    """OpenAI's error shape, so OpenAI clients show the message: {"error": {"message", "type"}}."""
    return {"error": {"message": message, "type": kind, **extra}}


def too_large(kind: str, size: int | str, limit: int, setting: str) -> ApiError:
    return ApiError(413, f"the {kind} upload is {size} bytes, over the limit of {limit:,} (setting {setting}); "
                         "send a smaller file", "request_too_large")


def safe_suffix(filename: str | None, default: str) -> str:
    """Keep a plain extension from the client's file name (decoders look at it), nothing else of it."""
    suffix = Path(filename or "").suffix
    return suffix if SUFFIX.match(suffix) else default


async def save_upload(upload, kind: str, folder: Path, max_bytes: int, setting: str) -> Path:
    """Copy a multipart upload to ``folder`` in chunks, refusing it as soon as it passes ``max_bytes``."""
    target = folder / f"{kind}{safe_suffix(upload.filename, '.bin')}"
    written = 0
    with target.open("wb") as out:
        while chunk := await upload.read(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise too_large(kind, f"over {max_bytes:,}", max_bytes, setting)
            out.write(chunk)
    if written == 0:
        raise InputError(f"the {kind} upload is empty (0 bytes); attach the file again")
    return target


def decode_base64(data: str, kind: str, max_bytes: int, setting: str) -> bytes:
    """Base64 text -> bytes, checking the size before decoding (a huge string is refused cheaply)."""
    if len(data) * 3 // 4 > max_bytes + 3:
        raise too_large(kind, f"about {len(data) * 3 // 4:,}", max_bytes, setting)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"the {kind} is not valid base64; encode the file's bytes with base64") from None
    if not raw:
        raise InputError(f"the {kind} is empty; attach the file again")
    if len(raw) > max_bytes:
        raise too_large(kind, f"{len(raw):,}", max_bytes, setting)
    return raw


def save_data_url(url: str, folder: Path, max_bytes: int) -> Path:
    """An OpenAI ``image_url`` part's data URL -> a file; remote URLs are refused (no fetching)."""
    match = DATA_URL.match(url.strip())
    if match is None:
        raise InputError("image_url must be a data: URL with base64 content (data:image/png;base64,...); "
                         "the server does not fetch remote images")
    mime = match.group("mime") or "image/png"
    suffix = safe_suffix("x." + mime.split("/")[-1], ".png")
    target = folder / f"image{suffix}"
    target.write_bytes(decode_base64(match.group("data"), "image", max_bytes, "max_image_bytes"))
    return target


def save_base64_audio(data: str, fmt: str, folder: Path, max_bytes: int) -> Path:
    target = folder / f"audio{safe_suffix('x.' + fmt, '.wav')}"
    target.write_bytes(decode_base64(data, "audio", max_bytes, "max_audio_bytes"))
    return target


def busy_error(timeout_s: float) -> ApiError:
    return ApiError(503, f"the request took longer than {timeout_s:g} s (setting request_timeout_s): the "
                         "server is busy with other requests; retry later", "timeout")


async def run_blocking(fn: Callable[..., T], *args: Any, timeout_s: float) -> T:
    """Run model work in a worker thread so the event loop keeps serving other requests; past the
    limit answer 503 at once (the thread finishes its step in the background: threads cannot be killed)."""
    try:
        with anyio.fail_after(timeout_s):
            return await anyio.to_thread.run_sync(lambda: fn(*args), abandon_on_cancel=True)
    except TimeoutError:
        raise busy_error(timeout_s) from None


_END = object()


class BlockingStream:
    """Pulls a blocking event iterator (ChatSession.send) one event at a time in worker threads,
    under one deadline for the whole stream."""

    def __init__(self, events: Iterator[dict], timeout_s: float):
        self.events, self.timeout_s = events, timeout_s
        self.deadline = time.monotonic() + timeout_s

    async def next(self) -> dict | None:
        """The next event, None at the end; InputError/ApiError pass through, a timeout is 503."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise busy_error(self.timeout_s)
        try:
            event = await run_blocking(next, self.events, _END, timeout_s=remaining)
        except ApiError as exc:
            raise busy_error(self.timeout_s) if exc.status == 503 else exc from None
        return None if event is _END else event

    async def __aiter__(self) -> AsyncIterator[dict]:
        while (event := await self.next()) is not None:
            yield event


class BackgroundServer:
    """A real uvicorn server on a free loopback port in a daemon thread (benchmarks and tests):
    ``with BackgroundServer(app) as url: ...``."""

    def __init__(self, app, host: str = "127.0.0.1", log_level: str = "warning"):
        import socket

        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=5))

    def __enter__(self) -> str:
        import threading

        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server at {self.url} did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
