"""Open one video safely and take it apart: frames to read, and its audio track to transcribe.

Decoding uses the ffmpeg and ffprobe binaries (Debian's ``ffmpeg`` package, which CI installs and
the audio converter already uses) through argument lists with timeouts, never a shell string: no
second copy of the ffmpeg libraries in the wheel set (PyAV ships its own), and a decoder that
crashes or hangs on a hostile file takes down a child process, not the ingest.

Videos are untrusted like images: size, duration and frame size are checked against the settings
(``max_video_bytes``, ``max_video_seconds``, ``max_video_pixels``) from the file and its header
before any frame is decoded, and every failure is an :class:`InputError` naming the file by its
name only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.core.errors import InputError, MissingDependency
from agent.ingest.files import check_media_file

if TYPE_CHECKING:  # pragma: no cover
    from agent.core.config import Settings

FRAME_RATE = 1.0
"""Frames sampled per second: a title card or caption is on screen for a second or more. Longer
clips get a lower rate so that ``max_video_frames`` frames still cover the whole clip."""
FRAME_MAX_SIDE = 960
"""Sampled frames are shrunk (never enlarged) to fit this side: OCR detects at 480 on the short side."""
HASH_SIZE = 16
"""dHash grid: 16x16 gradients tell "TOY STORY" from "TOY STORY 2" on a title card (8x8 did not)."""
HASH_MAX_DISTANCE = 10
"""Frames whose dHash differs from a kept frame's in at most this many of 256 bits are duplicates:
re-encodes of one still differ in a few bits, different title cards in dozens."""
PROBE_TIMEOUT_S = 30.0
DECODE_TIMEOUT_S = 300.0
"""One ffmpeg run may take this long: sampling frames at 1 fps decodes the whole clip, a few
seconds for a trailer on 2 cores; a decoder stuck on a hostile file is stopped here."""
IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif", "bmp_pipe", "tiff_pipe"}


@dataclass(frozen=True)
class VideoInfo:
    name: str
    width: int
    height: int
    seconds: float | None
    """None when neither the container nor the stream says (decoding stops at the limit anyway)."""
    has_audio: bool


@dataclass(frozen=True)
class Frame:
    seconds: float
    path: Path


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MissingDependency(f"the {name} binary is needed to read videos and is not installed; "
                                "install it (Debian/Ubuntu: apt-get install ffmpeg)")
    return found


def _run(cmd: list[str], path: Path, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"{what} {path.name} took over {timeout:g} s; is it a valid video file?") from None
    if result.returncode != 0:
        lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = (lines[-1] if lines else "ffmpeg failed").replace(str(path), path.name)
        raise InputError(f"could not read {path.name} as a video ({reason}); it may be corrupt or truncated: "
                         "re-encode it (e.g. MP4/H.264) or remove it")
    return result


def _seconds(*values) -> float | None:
    for value in values:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            return seconds
    return None


def probe(source: str | Path, settings: Settings) -> VideoInfo:
    """The video's header facts, checked against the limits; InputError for anything unusable."""
    path = check_media_file(source, "video", settings.max_video_bytes, "max_video_bytes")
    cmd = [binary("ffprobe"), "-v", "error", "-show_entries",
           "stream=codec_type,width,height,duration:stream_disposition=attached_pic:format=duration,format_name",
           "-of", "json", str(path)]
    data = json.loads(_run(cmd, path, PROBE_TIMEOUT_S, "reading the header of").stdout or b"{}")
    streams = data.get("streams") or []
    fmt = data.get("format") or {}
    # cover art in an audio file is a "video" stream too: it is a picture, not a clip
    videos = [s for s in streams if s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")]
    has_audio = any(s.get("codec_type") == "audio" for s in streams)
    if str(fmt.get("format_name", "")) in IMAGE_FORMATS:
        raise InputError(f"{path.name} is a still image, not a video; send it as an image")
    if not videos:
        hint = "it holds only audio: send it as a voice note / audio file" if has_audio else "it holds no video stream"
        raise InputError(f"{path.name} is not a video ({hint})")
    stream = videos[0]
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    if width <= 0 or height <= 0:
        raise InputError(f"{path.name} has no frame size in its header; it may be corrupt: re-encode it")
    if width * height > settings.max_video_pixels:
        raise InputError(f"{path.name} has {width}x{height} = {width * height:,} pixels per frame, over the limit of "
                         f"{settings.max_video_pixels:,} (setting max_video_pixels); scale it down")
    seconds = _seconds(fmt.get("duration"), stream.get("duration"))
    if seconds is not None and seconds > settings.max_video_seconds:
        raise InputError(f"{path.name} is {seconds:.0f} s long; the limit is {settings.max_video_seconds:.0f} s "
                         "(setting max_video_seconds); cut it")
    return VideoInfo(path.name, width, height, seconds, has_audio)


def frame_rate(info: VideoInfo, settings: Settings) -> float:
    """FRAME_RATE, or lower so that the frame cap spreads over the whole clip."""
    seconds = info.seconds or settings.max_video_seconds
    return min(FRAME_RATE, settings.max_video_frames / seconds)


def sample_frames(source: str | Path, info: VideoInfo, folder: Path, settings: Settings) -> list[Frame]:
    """Frames at :func:`frame_rate` (at most ``max_video_frames``) as PNG files in ``folder``, in time order."""
    path = Path(source)
    rate = frame_rate(info, settings)
    fit = f"scale='min({FRAME_MAX_SIDE},iw)':'min({FRAME_MAX_SIDE},ih)':force_original_aspect_ratio=decrease"
    cmd = [binary("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-map", "0:v:0", "-t", f"{settings.max_video_seconds:.3f}", "-vf", f"fps={rate:.6f},{fit}",
           "-frames:v", str(settings.max_video_frames), "-f", "image2", str(folder / "frame_%05d.png")]
    _run(cmd, path, DECODE_TIMEOUT_S, "decoding the frames of")
    files = sorted(folder.glob("frame_*.png"))
    if not files:
        raise InputError(f"no frame of {path.name} could be decoded; it may be corrupt or truncated: re-encode it")
    return [Frame(round(i / rate, 3), file) for i, file in enumerate(files)]


def extract_audio(source: str | Path, info: VideoInfo, target: Path, settings: Settings) -> Path | None:
    """The first audio track as 16 kHz mono WAV (what the audio converter reads), None without one.
    At most ``max_audio_seconds`` are kept, the audio converter's own limit."""
    if not info.has_audio:
        return None
    path = Path(source)
    seconds = min(settings.max_video_seconds, settings.max_audio_seconds)
    cmd = [binary("ffmpeg"), "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
           "-map", "0:a:0", "-vn", "-t", f"{seconds:.3f}", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
           "-y", str(target)]
    _run(cmd, path, DECODE_TIMEOUT_S, "decoding the audio of")
    # a WAV header alone is 44 bytes: a track with no samples is no speech, not an error
    return target if target.is_file() and target.stat().st_size > 44 else None


def dhash(image, size: int = HASH_SIZE):
    """Difference hash: the signs of horizontal brightness steps on a (size+1) x size grey thumbnail."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS), dtype=np.int16)
    return (grey[:, 1:] > grey[:, :-1]).ravel()


def distinct_frames(frames: list[Frame], max_distance: int = HASH_MAX_DISTANCE) -> list[Frame]:
    """The frames whose dHash is more than ``max_distance`` bits from every frame kept before them."""
    from PIL import Image

    kept: list[Frame] = []
    hashes = []
    for frame in frames:
        with Image.open(frame.path) as image:
            bits = dhash(image)
        if all(int((bits != other).sum()) > max_distance for other in hashes):
            kept.append(frame)
            hashes.append(bits)
    return kept
