"""Video converter without models: ffprobe/ffmpeg on clips made here, fake OCR and Whisper parts.

The real models read real trailers in tests/integration/test_video.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from agent.core.config import Settings
from agent.core.errors import InputError
from agent.ingest.converters import Conversion, MediaConverter
from agent.ingest.video import (
    FRAME_RATE,
    Frame,
    VideoInfo,
    distinct_frames,
    frame_rate,
    probe,
    sample_frames,
)
from plugins.video import VideoConverter, distinct_lines
from tests.fakes import media


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    two = media.silent_clip(folder, ("FIRST CARD", "SECOND CARD"), seconds_each=2.0, name="two")
    return {"two": two, "audio_only": media.audio_only(folder), "corrupt": media.corrupt(folder),
            "truncated": media.truncated(two, folder), "empty": media.empty(folder),
            "still": media.title_card(folder / "still.png", "A PICTURE")}


class FakeOcr(MediaConverter):
    """Reads "LINE n" on the n-th frame it is given; fails on the frames numbered in ``fail``."""

    name, modality = "ocr", "image"

    def __init__(self, fail: tuple[int, ...] = ()):
        super().__init__(None)
        self.calls, self.fail = 0, fail

    def convert(self, path: Path) -> Conversion:
        self.calls += 1
        if self.calls in self.fail:
            raise InputError("unreadable frame")
        return Conversion(details={"lines": [(f"LINE {self.calls}", 0.9)]})


class FakeWhisper(MediaConverter):
    name, modality = "whisper", "audio"

    def __init__(self, error: str | None = None):
        super().__init__(None)
        self.paths, self.error = [], error

    def convert(self, path: Path) -> Conversion:
        self.paths.append(Path(path))
        if self.error:
            raise InputError(f"{path} {self.error}")
        return Conversion(details={"text": "spoken words", "language": "en", "no_speech": False})


def converter(settings: Settings, ocr: MediaConverter | None = None, whisper: MediaConverter | None = None):
    video = VideoConverter(settings)
    video._parts.update(ocr=ocr or FakeOcr(), whisper=whisper or FakeWhisper())
    return video


# --- text fusion ---------------------------------------------------------------------------------


def test_distinct_lines_keep_first_appearance_order_and_merge_rereadings():
    frames = [["TOY STORY"], ["TOY", "STORY"], ["T0Y STORY", "Coming soon"], ["COMING SOON!"]]
    assert distinct_lines(frames) == ["TOY STORY", "Coming soon"]


def test_a_fuller_reading_replaces_the_shorter_one_in_place():
    assert distinct_lines([["TOY STORY"], ["In cinemas"], ["TOY STORY 2"]]) == ["TOY STORY 2", "In cinemas"]


def test_lines_without_letters_or_digits_are_dropped():
    assert distinct_lines([["---"], ["A"]]) == ["A"]


# --- frames ------------------------------------------------------------------------------------------


def test_near_duplicate_frames_are_dropped_and_different_cards_kept(tmp_path):
    first = media.title_card(tmp_path / "a.png", "TOY STORY")
    Image.open(first).save(tmp_path / "a.jpg", quality=60)  # the same card, re-encoded
    sequel = media.title_card(tmp_path / "b.png", "TOY STORY 2")
    frames = [Frame(0.0, first), Frame(1.0, tmp_path / "a.jpg"), Frame(2.0, sequel), Frame(3.0, first)]
    assert [f.seconds for f in distinct_frames(frames)] == [0.0, 2.0]


def test_the_frame_cap_spreads_frames_over_a_long_clip():
    info = VideoInfo("x.mp4", 640, 360, 600.0, False)
    assert frame_rate(info, Settings(max_video_frames=30)) == pytest.approx(30 / 600)
    short = VideoInfo("x.mp4", 640, 360, 10.0, False)
    assert frame_rate(short, Settings(max_video_frames=30)) == FRAME_RATE


def test_frames_are_sampled_in_time_order_within_the_cap(clips, tmp_path):
    settings = Settings()
    info = probe(clips["two"], settings)
    assert (info.width, info.height, info.has_audio) == (640, 360, False)
    assert info.seconds == pytest.approx(4.0, abs=0.2)
    frames = sample_frames(clips["two"], info, tmp_path, settings)
    assert [f.seconds for f in frames] == [0.0, 1.0, 2.0, 3.0]  # 4 s at 1 frame a second
    assert Image.open(frames[0].path).size == (640, 360)  # never enlarged
    (tmp_path / "capped").mkdir()
    capped = sample_frames(clips["two"], info, tmp_path / "capped", Settings(max_video_frames=2))
    assert [f.seconds for f in capped] == [0.0, 2.0]
    assert [f.seconds for f in distinct_frames(frames)] == [0.0, 2.0]  # one frame per card


# --- the converter ---------------------------------------------------------------------------------


def test_silent_clip_gives_each_cards_text_in_order_and_no_speech(clips):
    whisper = FakeWhisper()
    conv = converter(Settings(), whisper=whisper).convert(clips["two"])
    assert conv.card_fields == {"video_text": "LINE 1 | LINE 2", "video_transcript": ""}
    d = conv.details
    assert d["timeline"] == [{"t": 0.0, "lines": ["LINE 1"]}, {"t": 2.0, "lines": ["LINE 2"]}]
    assert (d["frames"], d["no_speech"], d["language"]) == (2, True, None)
    assert whisper.paths == []  # no audio track: Whisper is never asked
    assert set(d["stage_seconds"]) == {"probe", "frames", "frame_text", "speech"}


def test_a_frame_the_ocr_cannot_read_is_an_empty_frame_not_a_failure(clips):
    conv = converter(Settings(), ocr=FakeOcr(fail=(1,))).convert(clips["two"])
    assert conv.details["timeline"][0]["lines"] == [] and conv.card_fields["video_text"] == "LINE 2"


@pytest.mark.parametrize(("name", "settings", "expected"), [
    ("empty", {}, r"empty \(0 bytes\)"),
    ("corrupt", {}, "could not read corrupt.mp4 as a video"),
    ("truncated", {}, "could not read truncated.mp4 as a video"),
    ("audio_only", {}, "it holds only audio"),
    ("still", {}, "still image, not a video"),
    ("two", {"max_video_bytes": 1000}, "max_video_bytes"),
    ("two", {"max_video_seconds": 1.0}, "max_video_seconds"),
    ("two", {"max_video_pixels": 640 * 360 - 1}, "max_video_pixels"),
])
def test_each_bad_file_fails_with_a_clear_message(clips, name, settings, expected):
    ocr = FakeOcr()
    with pytest.raises(InputError, match=expected) as raised:
        converter(Settings(**settings), ocr=ocr).convert(clips[name])
    assert ocr.calls == 0  # refused before any frame is read
    if name not in ("empty", "two"):  # file checks name the path the caller gave; decoders the file only
        assert str(clips[name].parent) not in str(raised.value)


def test_an_audio_track_error_names_the_video_not_the_temporary_wav(tmp_path):
    clip = media.narrated_clip(tmp_path, "talk", "A TITLE", "A few words.")
    with pytest.raises(InputError, match="the audio track of talk.mp4") as raised:
        converter(Settings(), whisper=FakeWhisper(error="is too quiet")).convert(clip)
    assert "recsage-video-" not in str(raised.value) and "audio.wav" not in str(raised.value)

