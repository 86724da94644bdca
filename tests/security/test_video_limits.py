"""Hostile videos over HTTP: the size limit answers 413, every unreadable file 400 with a message
that names the upload and never the server's folders. The real video converter reads the uploads
(ffprobe refuses them before any model is loaded); the rest of the server runs on fakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.core.config import Settings
from agent.recommend import Recommender
from agent.recommend.media import video_parts
from agent.server.app import create_app
from plugins.video import VideoConverter
from tests.fakes import media
from tests.fakes.server import FakeChatAgent, FakeRecommender


class VideoReadingRecommender(FakeRecommender):
    """The fake recommender, with a video read by the real Recommender code and converter."""

    def __init__(self, tmp_path: Path, settings: Settings):
        super().__init__(tmp_path)
        self.video = VideoConverter(settings)

    def converter(self, name: str):
        assert name == "video"
        return self.video

    def recommend(self, *, video=None, **kwargs) -> dict:
        if video is not None:
            kwargs["query"] = " ".join(video_parts(self.converter, Path(video)).values())
        return super().recommend(**kwargs)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    clip = media.silent_clip(folder, seconds_each=2.0)
    return {"clip": clip, "corrupt": media.corrupt(folder), "truncated": media.truncated(clip, folder),
            "audio_only": media.audio_only(folder), "empty": media.empty(folder)}


@pytest.fixture
def client(tmp_path):
    settings = Settings(max_video_bytes=50_000, max_video_seconds=60)
    recommender = VideoReadingRecommender(tmp_path, settings)
    app = create_app(recommender, FakeChatAgent(recommender), settings)
    return TestClient(app, base_url="http://127.0.0.1", headers={"X-Recsage-Client": "1"})


def _post(client, path: Path, route: str = "/v1/recommend"):
    data = {"user": "1"} if route == "/v1/recommend" else {"message": ""}
    return client.post(route, data=data, files={"video": (path.name, path.read_bytes(), "video/mp4")})


def test_a_video_over_the_byte_limit_is_413_naming_the_setting(client):
    response = client.post("/v1/recommend", data={"user": "1"}, files={"video": ("big.mp4", b"\0" * 50_001)})
    assert response.status_code == 413
    assert "max_video_bytes" in response.json()["error"]["message"]


@pytest.mark.parametrize(("name", "words"), [
    ("corrupt", "as a video"),
    ("truncated", "as a video"),
    ("audio_only", "it holds only audio"),
    ("empty", "empty"),
])
def test_each_unreadable_video_is_400_naming_the_upload_only(client, files, name, words):
    response = _post(client, files[name])
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert words in message
    assert "recsage-upload-" not in message and "/tmp" not in message


def test_a_video_over_the_duration_limit_is_400_naming_the_setting(tmp_path, files):
    settings = Settings(max_video_seconds=1)
    recommender = VideoReadingRecommender(tmp_path, settings)
    client = TestClient(create_app(recommender, FakeChatAgent(recommender), settings),
                        base_url="http://127.0.0.1", headers={"X-Recsage-Client": "1"})
    response = _post(client, files["clip"])
    assert response.status_code == 400 and "max_video_seconds" in response.json()["error"]["message"]


def test_the_default_body_limit_makes_room_for_a_video():
    from agent.server.middleware import body_limit

    small, large = Settings(max_video_bytes=1), Settings(max_video_bytes=10_000_001)
    assert body_limit(large) - body_limit(small) == 10_000_000
