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
APP = create_app(_recommender, FakeChatAgent(_recommender), Settings(max_image_bytes=5000, max_audio_bytes=5000))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(checks=[not_a_server_error])
