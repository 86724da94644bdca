"""What the HTTP server does around the models: size-limited uploads into temporary files, blocking
model work moved off the event loop under a time limit, and errors as JSON with the right status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import queue
import re
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.responses import StreamingResponse

from agent.core.errors import InputError

T = TypeVar("T")
log = logging.getLogger("recsage.server")
CHUNK = 1 << 16
SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)$", re.DOTALL)


class ApiError(Exception):
    """An HTTP answer other than 200 whose message says what was wrong and what to do."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind


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
_CLOSE = None


class BlockingStream:
    """Pulls a blocking event iterator (ChatSession.send) one event at a time, under one deadline
    for the whole stream, in one daemon thread of its own that also closes it.

    The thread advances the generator only when asked (``next``) and closes it, in that same thread,
    when asked to (``close``: a client disconnect, a timeout, the end), between two steps: a step
    already running ends, no further step starts, the generator's ``finally`` blocks run (a chat
    session's turn is over) and ``on_close`` runs. A daemon thread, so a step still running never
    holds the process when the server is told to stop."""

    def __init__(self, events: Iterator[dict], timeout_s: float, on_close: Callable[[], None] | None = None):
        self.events, self.timeout_s, self.on_close = events, timeout_s, on_close
        self.deadline = time.monotonic() + timeout_s
        self.asks: queue.SimpleQueue = queue.SimpleQueue()
        self.closed = False
        try:
            threading.Thread(target=self._run, name="recsage-stream", daemon=True).start()
        except RuntimeError:  # the OS will not start another thread: too many turns at once
            self._finish()
            raise ApiError(503, "the server is running too many chat turns at once; retry later", "timeout") from None

    def _run(self) -> None:
        try:
            while True:
                try:  # nobody asks for the next event past the deadline: close anyway
                    ask = self.asks.get(timeout=max(0.0, self.deadline - time.monotonic()) + 1.0)
                except queue.Empty:
                    return
                if ask is _CLOSE:
                    return
                loop, future = ask
                try:
                    outcome = (next(self.events, _END), None)
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting request
                    outcome = (None, exc)
                _resolve(loop, future, outcome)
                if outcome[1] is not None or outcome[0] is _END:
                    return
        finally:
            self._finish()

    def _finish(self) -> None:
        try:
            close = getattr(self.events, "close", None)
            if close is not None:
                close()  # GeneratorExit at the step boundary: the turn's `finally` / `with` blocks end
        except Exception:  # noqa: BLE001 - a generator that fails while closing is still closed
            log.exception("closing a chat stream failed")
        finally:
            if self.on_close is not None:
                self.on_close()

    def close(self) -> None:
        """Stop after the running step (if any); returns at once, the thread does the closing."""
        if not self.closed:
            self.closed = True
            self.asks.put(_CLOSE)

    async def next(self) -> dict | None:
        """The next event, None at the end; InputError/ApiError pass through, a timeout is 503 (and
        closes the stream). A cancelled wait (client gone) closes it too."""
        remaining = self.deadline - time.monotonic()
        if self.closed or remaining <= 0:
            self.close()
            raise busy_error(self.timeout_s)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.asks.put((loop, future))
        try:
            with anyio.fail_after(remaining):
                event, error = await future
        except BaseException as exc:
            self.close()
            if isinstance(exc, TimeoutError):
                raise busy_error(self.timeout_s) from None
            raise
        if error is not None:
            self.close()
            raise error
        if event is _END:
            self.close()
            return None
        return event


def _resolve(loop: asyncio.AbstractEventLoop, future: asyncio.Future, outcome: tuple) -> None:
    """Hand a step's outcome to the request waiting on the event loop (if it still waits)."""
    def settle() -> None:
        if not future.done():
            future.set_result(outcome)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed: the server stopped, nobody waits
        pass


class TurnResponse(StreamingResponse):
    """A streamed chat turn: each chunk leaves without the server's folders in it (``hide``), and
    the turn's stream is closed when the response ends, however it ends (done, the client gone,
    the server stopping), so the session is free for its next turn."""

    def __init__(self, chunks: AsyncIterator[str], stream: BlockingStream, hide: Callable[[str], str]):
        super().__init__((hide(chunk) async for chunk in chunks), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache"})
        self.stream = stream

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.close()


def server_folders(settings, recommender=None) -> tuple[str, ...]:
    """Folders of this server whose names an error message must not show: temp (uploads live
    there), the models' home, the store and catalog folders, the user's home; longest first."""
    found = [tempfile.gettempdir(), str(settings.home), str(Path.home())]
    project = getattr(recommender, "project", None)
    if project is not None:
        found += [str(folder) for folder in project_folders(project)]
    return tuple(sorted({f.rstrip("/") for f in found if len(f.rstrip("/")) > 1}, key=len, reverse=True))


def project_folders(project) -> list[Path]:
    """The folders a project names: its catalog's, its interactions log's, its store and artefacts."""
    catalog = project.catalog.path
    found = [catalog if catalog.is_dir() else catalog.parent, project.catalog.posters, project.store.path,
             project.store.artifacts]
    if project.interactions is not None:
        found.append(project.interactions.path.parent)
    return [Path(f) for f in found if f is not None]


def hide_paths(text: str, folders) -> str:
    """``text`` with each folder's name taken out: a file inside one is named by its path within
    it (``/tmp/recsage-upload-x/image.png`` -> ``image.png`` when the upload folder is given)."""
    for folder in folders:
        if folder and folder in text:
            text = text.replace(folder + "/", "").replace(folder, "(server folder)")
    return text


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
