"""Video files made for the tests with ffmpeg and espeak-ng (nothing downloaded, nothing shipped).

A "trailer" is a title card (the film's title in large letters), then the film's poster, over an
espeak-ng narration of its plot; the other builders make the bad files every media path must
refuse alone: silent clips, audio-only files with a video extension, corrupt, truncated and empty
files. The tools are the ones CI installs (.ci/run: ffmpeg, espeak-ng); a missing one fails the
test that needs it, never skips it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SIZE = (640, 360)
TITLE_SECONDS = 2.0
FPS = 10
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


@dataclass(frozen=True)
class Trailer:
    path: Path
    title: str
    narration: str
    """The words espeak-ng spoke (the reference for a word error rate)."""


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (CI installs it: .ci/run)")
    return found


def run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed: {result.stderr.decode(errors='replace')[-500:]}")


def plot(data_dir: Path, movie_id: int) -> str:
    """The film's one-line description from plots.jsonl (read at test time, never copied)."""
    with (data_dir / "ml-latest-small" / "plots.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            if int(row["movieId"]) == movie_id:
                return row["description"]
    raise KeyError(movie_id)


def title_card(path: Path, title: str) -> Path:
    """White capitals on black, large enough for OCR at the converter's frame size."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", SIZE, (0, 0, 0))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 56)
    box = draw.textbbox((0, 0), title, font=font)
    xy = ((SIZE[0] - (box[2] - box[0])) // 2, (SIZE[1] - (box[3] - box[1])) // 2)
    draw.text(xy, title, fill=(255, 255, 255), font=font)
    image.save(path)
    return path


def speech(path: Path, text: str) -> Path:
    # a male variant with short word gaps: Whisper base misheard fewer words of it (plot WER)
    run([tool("espeak-ng"), "-v", "en+m3", "-s", "150", "-g", "8", "-w", str(path), text])
    return path


def _still(source: Path) -> list[str]:
    """Input arguments of a still image shown for the whole clip (cut by -t / -shortest)."""
    return ["-loop", "1", "-framerate", str(FPS), "-i", str(source)]


_FIT = (f"scale={SIZE[0]}:{SIZE[1]}:force_original_aspect_ratio=decrease,"
        f"pad={SIZE[0]}:{SIZE[1]}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={FPS}")


def narrated_clip(folder: Path, stem: str, title: str, narration: str, poster: Path | None = None) -> Path:
    """A title card for TITLE_SECONDS, then ``poster`` (or the card again), under ``narration``."""
    folder.mkdir(parents=True, exist_ok=True)
    card = title_card(folder / f"{stem}_title.png", title.upper())
    voice = speech(folder / f"{stem}.wav", narration)
    out = folder / f"{stem}.mp4"
    run([tool("ffmpeg"), "-y", "-loglevel", "error", "-t", f"{TITLE_SECONDS}", *_still(card),
         *_still(poster or card), "-i", str(voice),
         "-filter_complex", f"[0:v]{_FIT}[a];[1:v]{_FIT}[b];[a][b]concat=n=2:v=1:a=0,format=yuv420p[v]",
         "-map", "[v]", "-map", "2:a", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
         "-b:a", "192k", "-shortest", str(out)])
    return out


def trailer(folder: Path, data_dir: Path, movie_id: int, title: str) -> Trailer:
    """The film's title card and poster under a narration of its title and plot."""
    narration = f"{title}. {plot(data_dir, movie_id)}"
    path = narrated_clip(folder, f"trailer_{movie_id}", title, narration, data_dir / "posters" / f"{movie_id}.jpg")
    return Trailer(path, title, narration)


def silent_clip(folder: Path, titles: tuple[str, ...] = ("SILENT FILM",), seconds_each: float = 4.0,
                name: str = "silent") -> Path:
    """Title cards one after another, ``seconds_each`` each: a video stream, no audio stream."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs, chains = [], []
    for i, title in enumerate(titles):
        inputs += ["-t", f"{seconds_each}", *_still(title_card(folder / f"{name}_{i}.png", title))]
        chains.append(f"[{i}:v]{_FIT}[c{i}]")
    joined = "".join(f"[c{i}]" for i in range(len(titles)))
    graph = ";".join(chains) + f";{joined}concat=n={len(titles)}:v=1:a=0,format=yuv420p[v]"
    out = folder / f"{name}.mp4"
    run([tool("ffmpeg"), "-y", "-loglevel", "error", *inputs, "-filter_complex", graph, "-map", "[v]",
         "-c:v", "libx264", "-preset", "ultrafast", str(out)])
    return out


def audio_only(folder: Path, text: str = "This file has a voice and no picture.") -> Path:
    """Speech in an MP4 container with no video stream (a video extension on an audio file)."""
    folder.mkdir(parents=True, exist_ok=True)
    voice = speech(folder / "audio_only.wav", text)
    out = folder / "audio_only.mp4"
    run([tool("ffmpeg"), "-y", "-loglevel", "error", "-i", str(voice), "-vn", "-c:a", "aac", str(out)])
    return out


def corrupt(folder: Path) -> Path:
    """Bytes that look like nothing ffmpeg reads, under a video name."""
    path = folder / "corrupt.mp4"
    path.write_bytes(b"this is not a video file\n" * 200)
    return path


def truncated(source: Path, folder: Path, keep: float = 0.3) -> Path:
    """The first ``keep`` of a real clip's bytes (its index, at the end of an MP4, is lost)."""
    path = folder / f"truncated{source.suffix}"
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def empty(folder: Path) -> Path:
    path = folder / "empty.mp4"
    path.write_bytes(b"")
    return path
