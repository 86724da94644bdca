"""Videos through the ingest pipeline: real ffmpeg, fake OCR/Whisper parts, a real embedded Chroma."""

from __future__ import annotations

import pytest

from agent.ingest.catalog import Item
from agent.ingest.pipeline import PARTIAL, Pipeline, content_hash, ingest
from agent.ingest.store import Store
from tests.conftest import FakeEmbedder
from tests.fakes import media
from tests.unit.plugins.test_video import converter


@pytest.fixture
def pipeline(monkeypatch, fake_settings):
    fake = Pipeline(FakeEmbedder(), [], [], notes=[], video=[converter(fake_settings)])
    monkeypatch.setattr("agent.ingest.pipeline.build_pipeline", lambda settings, *_: fake)
    return fake


def test_a_bad_video_fails_alone_and_the_batch_is_stored(tmp_path, fake_settings, pipeline):
    good = media.silent_clip(tmp_path, ("FIRST CARD", "SECOND CARD"), seconds_each=2.0, name="good")
    items = [Item(id="v1", title="With a trailer", video=str(good)),
             Item(id="v2", title="Broken trailer", video=str(media.corrupt(tmp_path))),
             Item(id="v3", title="No trailer")]
    store = Store(tmp_path / "store")
    report = ingest(items, store, fake_settings, progress=False)
    assert (report.ingested, report.items_in_store) == (3, 3)
    assert [(f.id, f.converter) for f in report.failed] == [("v2", "video")]
    assert "could not read corrupt.mp4 as a video" in report.failed[0].reason
    got = store.get(["v1", "v2", "v3"])
    assert "Video text: LINE 1 | LINE 2" in got["v1"]["document"]
    assert got["v1"]["metadata"]["video"] == str(good)  # a video is recorded once a converter read it
    assert "video" not in got["v2"]["metadata"] and got["v2"]["metadata"]["content_hash"].endswith(PARTIAL)
    assert "Video" not in got["v3"]["document"]
    for stage in ("video:video", "video:probe", "video:frames", "video:frame_text", "video:speech"):
        assert report.seconds[stage] >= 0, stage  # per-stage video times in the ingest summary

    again = ingest(items, store, fake_settings, progress=False)
    assert (again.ingested, again.unchanged) == (1, 2)  # only the failed video is retried


def test_videos_change_no_hash_of_an_item_without_one(tmp_path, fake_settings):
    plain = Item(id="1", title="Plain")
    embedder = FakeEmbedder()
    before = Pipeline(embedder, [], [], notes=[])
    after = Pipeline(embedder, [], [], notes=[], video=[converter(fake_settings)])
    assert content_hash(plain, after.versions(plain), "t") == content_hash(plain, before.versions(), "t")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"one")
    with_video = Item(id="2", title="Clip", video=str(clip))
    first = content_hash(with_video, after.versions(with_video), "t")
    assert first != content_hash(with_video, before.versions(with_video), "t")  # the converter's version counts
    clip.write_bytes(b"two")
    assert content_hash(with_video, after.versions(with_video), "t") != first  # and the file's bytes
