"""Videos on the real models: `recsage describe-video` on trailers made from MovieLens posters with
an espeak-ng narration of the plot, silent clips, and bad files through the CLI (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_recsage
from tests.fakes import media
from tests.unit.plugins.test_whisper_audio import wer

MAX_WER = 0.20


@pytest.fixture(scope="module")
def made(tmp_path_factory, shared_data) -> dict:
    folder = tmp_path_factory.mktemp("trailers")
    trailer = media.trailer(folder, shared_data, 1, "Toy Story")
    return {"trailer": trailer, "silent": media.silent_clip(folder), "folder": folder}


def _describe(path: Path, *args: str) -> tuple[int, dict | None, str]:
    out = run_recsage(*args, "describe-video", path, "--json")
    return out.returncode, json.loads(out.stdout) if out.returncode == 0 else None, out.stderr


@pytest.mark.integration
def test_toy_story_trailer_gives_its_title_and_its_narration(made, real_settings):
    code, got, err = _describe(made["trailer"].path)
    assert code == 0, err
    assert "TOY STORY" in got["frame_text"].upper()
    assert wer(made["trailer"].narration, got["transcript"]) <= MAX_WER, got["transcript"]
    assert (got["language"], got["no_speech"]) == ("en", False)
    assert got["frames"] >= 2 and got["seconds"] > media.TITLE_SECONDS  # title card, then the poster
    assert [entry["t"] for entry in got["timeline"]] == sorted(entry["t"] for entry in got["timeline"])


@pytest.mark.integration
def test_silent_clip_has_no_speech_and_an_empty_transcript(made, real_settings):
    code, got, err = _describe(made["silent"])
    assert code == 0, err
    assert (got["no_speech"], got["transcript"], got["language"]) == (True, "", None)
    assert "SILENT FILM" in got["frame_text"].upper()


@pytest.mark.integration
def test_bad_files_exit_2_with_a_clear_message(made, tmp_path):
    folder = made["folder"]
    config = tmp_path / "small.toml"
    config.write_text("max_video_bytes = 1000\n")
    cases = [
        ((media.corrupt(folder),), "could not read corrupt.mp4 as a video"),
        ((media.truncated(made["trailer"].path, folder),), "could not read truncated.mp4 as a video"),
        ((media.empty(folder),), "empty (0 bytes)"),
        ((media.audio_only(folder),), "it holds only audio"),
        ((made["silent"], "--config", config), "max_video_bytes"),
    ]
    for (path, *options), words in cases:
        code, _, err = _describe(path, *options)
        assert code == 2 and words in err and "Traceback" not in err, (path.name, err)


@pytest.mark.integration
def test_a_video_without_sound_given_as_audio_exits_2(made):
    out = run_recsage("transcribe", made["silent"])
    assert out.returncode == 2 and "could not decode silent.mp4 as audio" in out.stderr, out.stderr
