"""The server's edge: one pure-ASGI middleware that runs before routing and before any body byte
is read, so a hostile request costs a header parse, not a body parse.

In order: the bearer token (when the server has one) on /v1; without a token, only loopback Host
headers (DNS rebinding) and no cross-site simple POSTs (a browser sends a form or text/plain POST
to any origin without asking first); then the body itself, counted as it arrives (chunked bodies
too) against a byte cap, under one deadline for the whole body. It is plain ASGI, not Starlette's
BaseHTTPMiddleware, so streamed responses pass through unbuffered.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from collections.abc import Awaitable, Callable

import anyio

from agent.core.config import Settings
from agent.server.io import error_body

Scope = dict
Message = dict
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
CLIENT_HEADER = "x-recsage-client"
"""A header a browser only sends cross-site after a CORS preflight, which this server never grants."""
FORM_OVERHEAD = 1_000_000
"""Bytes a body may carry beyond its uploads (multipart boundaries, text fields, JSON around base64)."""


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header without its port: ``[::1]:8000`` -> ``::1``, ``localhost:80`` -> ``localhost``."""
    value = header.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def body_limit(settings: Settings) -> int:
    """Bytes one request body may carry: ``max_request_bytes``, or the image and audio uploads as
    base64 (JSON clients send media that way, 4/3 of the bytes), a video (multipart only, as
    bytes) and room for the other fields."""
    if settings.max_request_bytes is not None:
        return settings.max_request_bytes
    return (settings.max_image_bytes + settings.max_audio_bytes) * 4 // 3 + settings.max_video_bytes + FORM_OVERHEAD


class Refusal(Exception):
    """An answer the edge gives instead of the app's (raised from ``receive`` while the body is read)."""

    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}

    async def send(self, send: Send) -> None:
        body = json.dumps(error_body(self.message, self.kind)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close"), *((k.encode(), v.encode()) for k, v in self.headers.items())]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class EdgeGuard:
    """``app.add_middleware(EdgeGuard, token=..., settings=...)``: see the module docstring."""

    def __init__(self, app, token: str | None, settings: Settings):
        self.app, self.token = app, token
        self.max_bytes = body_limit(settings)
        self.read_timeout_s = settings.body_read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.check_headers(scope, _headers(scope))
        if refusal is not None:
            await refusal.send(send)
            return
        await self.guarded(scope, receive, send)

    def check_headers(self, scope: Scope, headers: dict[str, str]) -> Refusal | None:
        """What the headers alone decide, before a body byte is read."""
        if self.token is not None:
            if scope["path"] == "/v1" or scope["path"].startswith("/v1/"):
                return self.check_token(headers)
        else:
            refusal = self.check_local(scope, headers)
            if refusal is not None:
                return refusal
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return self.too_large(f"declares {int(declared):,} bytes")
        return None

    def check_token(self, headers: dict[str, str]) -> Refusal | None:
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), self.token.encode()):
            return None
        return Refusal(401, "missing or wrong bearer token: send `Authorization: Bearer <token>` with the token "
                            "the server was started with", "authentication_error", {"WWW-Authenticate": "Bearer"})

    @staticmethod
    def check_local(scope: Scope, headers: dict[str, str]) -> Refusal | None:
        """A server without a token trusts this machine only: its own names, and no request a
        page of another site could make a browser send."""
        host = headers.get("host", "")
        if not is_loopback(host_name(host)):
            return Refusal(403, f"Host {host!r} is not this machine: a server without a token answers only "
                                "localhost, 127.0.0.1 or [::1] (start it with --token to serve other names)",
                           "forbidden")
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if scope["method"] == "POST" and content_type != "application/json" and CLIENT_HEADER not in headers:
            return Refusal(403, f"a POST without a token must be application/json or carry the header "
                                f"`X-Recsage-Client: 1` (got content type {content_type or 'none'!r}): browsers "
                                "send other POSTs from any site without asking", "forbidden")
        return None

    def too_large(self, what: str) -> Refusal:
        return Refusal(413, f"the request body {what}, over the limit of {self.max_bytes:,} bytes (settings "
                            "max_request_bytes, or max_image_bytes + max_audio_bytes + max_video_bytes); send smaller files",
                       "request_too_large")

    async def guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that counts body bytes and keeps the deadline; when it
        refuses, the app's own answer (whatever it made of the error) is replaced by the refusal."""
        deadline = time.monotonic() + self.read_timeout_s
        received, body_done, refusal, started = 0, False, None, False

        async def guarded_receive() -> Message:
            nonlocal received, body_done, refusal
            if refusal is not None:
                raise refusal
            if body_done:  # after the body: only http.disconnect, which may take as long as it likes
                return await receive()
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    body_done = not message.get("more_body", False)
                    if received > self.max_bytes:
                        refusal = self.too_large(f"passed {self.max_bytes:,} bytes")
                        raise refusal
                return message
            refusal = Refusal(408, f"the request body did not arrive within {self.read_timeout_s:g} s "
                                   "(setting body_read_timeout_s); send it at once", "request_timeout")
            raise refusal

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:
                return  # the refusal goes out instead, below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
        if refusal is not None and not started:
            await refusal.send(send)
