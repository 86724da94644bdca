"""The video converter plugin: a clip read as its frames' text and its speech, in time order.

A video is taken apart by :mod:`agent.ingest.video` (ffmpeg/ffprobe): frames sampled at a fixed
rate with a cap, near-duplicates dropped by a perceptual hash, each kept frame read by the image
converter (OCR), and the audio track transcribed by the audio converter (VAD-gated Whisper).
The card gets ``video_text`` (distinct on-screen lines, first appearance first) and
``video_transcript`` (the speech).

No video vector is stored: without image weights the only vector a clip has is the MiniLM vector
of its text, and that text is already part of the card's own vector.
"""

from __future__ import annotations

import re
import tempfile
import threading
from difflib import SequenceMatcher
from pathlib import Path
from typing import ClassVar

from agent.core.errors import InputError, MissingDependency, ModelNotReady
from agent.core.timing import Stopwatch
from agent.hookspecs import hookimpl
from agent.ingest.converters import Conversion, MediaConverter
from agent.ingest.video import (
    FRAME_RATE,
    HASH_MAX_DISTANCE,
    HASH_SIZE,
    Frame,
    binary,
    distinct_frames,
    extract_audio,
    probe,
    sample_frames,
)
from plugins.tools import _ConverterTool

SAME_LINE = 0.85
"""OCR of one caption differs a little from frame to frame: lines this similar (difflib ratio of
their letters and digits) count as one. At 0.85 "T0Y STORY" joins "TOY STORY" but "PART 2" stays
apart from "PART 1" (0.8)."""
LINE_SEPARATOR = " | "
SPEECH_BEAM_SIZE = 5
"""Whisper beam for a video's speech. Voice notes decode greedily for latency; a catalog's clips
are read once, at ingest, and on the Toy Story trailer (espeak-ng narration) beam 5 brought the
word error rate from 0.25 to 0.17 for about twice the decoding time."""
_KEY = re.compile(r"[^\w]+", re.UNICODE)


def _key(line: str) -> str:
    return _KEY.sub("", line.casefold())


def _seen(key: str, keys: list[str]) -> bool:
    """Already read: part of a kept line (a title split over two lines on a poster) or nearly one."""
    return any(key in k or SequenceMatcher(None, key, k).ratio() >= SAME_LINE for k in keys)


def distinct_lines(frame_lines: list[list[str]]) -> list[str]:
    """On-screen lines in order of first appearance, each once (near-identical readings merged)."""
    kept: list[str] = []
    keys: list[str] = []
    for lines in frame_lines:
        for line in lines:
            key = _key(line)
            longer = next((i for i, k in enumerate(keys) if k in key and k != key), None)
            if longer is not None:  # "TOY STORY", then "TOY STORY 2" in full: keep the fuller reading
                kept[longer], keys[longer] = line, key
            elif key and not _seen(key, keys):
                kept.append(line)
                keys.append(key)
    return kept


class VideoConverter(MediaConverter):
    """Reads a video file: ``video_text`` (on-screen text) and ``video_transcript`` (speech)."""

    name: ClassVar[str] = "video"
    modality: ClassVar[str] = "video"
    version: ClassVar[str] = f"1-fps{FRAME_RATE:g}-dh{HASH_SIZE}x{HASH_MAX_DISTANCE}-l{SAME_LINE}-b{SPEECH_BEAM_SIZE}"
    optional: ClassVar[bool] = True
    """Without ffmpeg a catalog still ingests; its videos are reported as not read."""
    frame_converter: ClassVar[str] = "ocr"
    audio_converter: ClassVar[str] = "whisper"

    def __init__(self, settings):
        super().__init__(settings)
        self._parts: dict[str, MediaConverter] = {}
        self._lock = threading.Lock()

    def unavailable_reason(self) -> str | None:
        try:
            binary("ffmpeg"), binary("ffprobe")
            for name in (self.frame_converter, self.audio_converter):
                reason = self._part(name).unavailable_reason()
                if reason is not None:
                    return f"{name}: {reason}"
        except (MissingDependency, ModelNotReady) as exc:
            return str(exc)
        return None

    def _part(self, name: str) -> MediaConverter:
        with self._lock:
            if name not in self._parts:
                from agent.plugins import load_converter

                part = load_converter(self.settings, name)
                if name == self.audio_converter and hasattr(part, "beam_size"):
                    part.beam_size = SPEECH_BEAM_SIZE  # this instance only: voice notes stay greedy
                self._parts[name] = part
            return self._parts[name]

    def convert(self, path: Path) -> Conversion:
        clock = Stopwatch()  # seconds per stage: the ingest summary adds them up per stage
        with tempfile.TemporaryDirectory(prefix="recsage-video-") as tmp:
            with clock("probe"):
                info = probe(path, self.settings)
            with clock("frames"):
                frames = distinct_frames(sample_frames(path, info, Path(tmp), self.settings))
            with clock("frame_text"):
                timeline = self._read_frames(frames)
            with clock("speech"):
                speech = self._transcribe(path, info, Path(tmp) / "audio.wav")
        lines = distinct_lines([entry["lines"] for entry in timeline])
        details = {
            "frames": len(frames), "frame_text": LINE_SEPARATOR.join(lines), "lines": lines,
            "timeline": timeline, "transcript": speech.get("text", ""), "language": speech.get("language"),
            "no_speech": not speech.get("text"), "seconds": info.seconds,
            "stage_seconds": {k: round(v, 3) for k, v in clock.seconds.items()},
        }
        return Conversion(card_fields={"video_text": details["frame_text"], "video_transcript": details["transcript"]},
                          details=details)

    def _read_frames(self, frames: list[Frame]) -> list[dict]:
        """Each kept frame's text lines, in time order. A frame we decoded ourselves that the image
        converter cannot read is an empty frame, not a bad video."""
        results = self._part(self.frame_converter).convert_many([f.path for f in frames])
        timeline = []
        for frame, result in zip(frames, results, strict=True):
            lines = [] if isinstance(result, Exception) else [text for text, _ in result.details.get("lines", [])]
            timeline.append({"t": frame.seconds, "lines": lines})
        return timeline

    def _transcribe(self, path: Path, info, wav: Path) -> dict:
        audio = extract_audio(path, info, wav, self.settings)
        if audio is None:
            return {}
        try:
            return self._part(self.audio_converter).convert(audio).details
        except InputError as exc:  # the audio converter names its own temporary file
            raise InputError(f"the audio track of {info.name}: {str(exc).replace(str(audio), 'it')}") from None

    def close(self) -> None:
        """Stop the parts' worker processes (OCR), as the ingest does for its own converters."""
        for part in self._parts.values():
            if hasattr(part, "close"):
                part.close()


class DescribeVideo(_ConverterTool):
    """Watch a video clip (a trailer): the text shown on screen and what is said."""

    name = "describe_video"
    converter_name = "video"
    kind = "video"
    empty = "no readable text and no speech in {what}"
    label = "the video"
    triggers = (r"\.(mp4|m4v|mov|mkv|webm|avi)\b", r"\b(video|clip|trailer)\b")
    examples = ("what is this trailer.mp4 about",)

    def text_of(self, conversion) -> str:
        return " ".join(v for v in conversion.card_fields.values() if v)


@hookimpl
def register_converters(register):
    register(VideoConverter)


@hookimpl
def register_tools(register):
    register(DescribeVideo())
