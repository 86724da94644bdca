"""schemathesis against the server's own OpenAPI spec: generated requests (valid and invalid) never
get a 5xx. On the fakes, so every route is reachable in seconds; the real app is covered by
test_server_real.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from agent.core.config import Settings
from agent.server.app import create_app
from tests.fakes.server import FakeChatAgent, FakeRecommender

_recommender = FakeRecommender(Path(tempfile.mkdtemp(prefix="recsage-openapi-")))
_APP = create_app(_recommender, FakeChatAgent(_recommender), Settings(max_image_bytes=5000, max_audio_bytes=5000))


async def APP(scope, receive, send):
    """The app as the web page reaches it: schemathesis calls every ASGI app at Host `testserver`,
    which a server without a token refuses (DNS rebinding); the page also sends X-Recsage-Client."""
    if scope["type"] == "http":
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in (b"host", b"x-recsage-client")]
        scope = {**scope, "headers": [(b"host", b"127.0.0.1"), (b"x-recsage-client", b"1"), *headers]}
    await _APP(scope, receive, send)


schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
