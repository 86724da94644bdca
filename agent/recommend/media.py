"""A request's modalities as text (and a photo as a vector): typed words, a photo's OCR text, a
voice note's transcript, a video's on-screen text and speech, through the converter plugins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from agent.core.config import Settings
from agent.core.errors import InputError, ModelNotReady


def request_parts(converter: Callable[[str], object], query: str | None = None, image: Path | None = None,
                 audio: Path | None = None, video: Path | None = None) -> dict[str, str]:
    """Every modality of the request as text: typed query, photo text (OCR), voice-note transcript,
    a video's on-screen text and speech. ``converter(name)``: the converter plugin of that name."""
    parts: dict[str, str] = {}
    if query and query.strip():
        parts["query"] = query.strip()
    if image is not None:
        with named_as(image):
            text = converter("ocr").convert(Path(image)).card_fields.get("poster_text", "")
        if not text:
            raise InputError(f"no readable text in the image ({Path(image).name}); without CLIP weights "
                             "a photo is read by OCR only")
        parts["photo_text"] = text
    if audio is not None:
        with named_as(audio):
            conv = converter("whisper").convert(Path(audio))
        if conv.details.get("no_speech") or not conv.details.get("text"):
            raise InputError(f"no speech found in the voice note ({Path(audio).name}): record it again, "
                             "closer to the microphone")
        parts["transcript"] = conv.details["text"].strip()
    if video is not None:
        parts.update(video_parts(converter, Path(video)))
    return parts


def video_parts(converter: Callable[[str], object], video: Path) -> dict[str, str]:
    """A video's on-screen text and speech as request parts (named apart from the card's own
    ``video_text`` / ``video_transcript`` fields, which evidence cites by those names)."""
    with named_as(video):
        fields = converter("video").convert(video).card_fields
    parts = {"video_screen": fields.get("video_text", "").strip(),
             "video_speech": fields.get("video_transcript", "").strip()}
    if not any(parts.values()):
        raise InputError(f"no readable text and no speech in the video ({video.name}): nothing to steer by")
    return {name: text for name, text in parts.items() if text}


def photo_vector(converter: Callable[[str], object], settings: Settings, image: Path | None) -> np.ndarray | None:
    """The photo's vector from the trained image encoder when one is configured (``image_encoder``)
    and ``photo_image_weight`` > 0; None (OCR only) otherwise, and with real CLIP weights, which
    take the encoder's place at ingest."""
    if image is None or settings.photo_image_weight <= 0 or settings.image_encoder is None:
        return None
    if converter("clip").unavailable_reason() is None:
        return None
    encoder = converter("image_encoder")
    reason = encoder.unavailable_reason()
    if reason is not None:
        raise ModelNotReady(f"photo_image_weight is set but the image encoder is not usable: {reason}")
    with named_as(image):
        return np.asarray(encoder.convert(Path(image)).embedding, dtype=np.float32)


@contextmanager
def named_as(path: Path) -> Iterator[None]:
    """A converter's InputError names the file by its name only: a server's upload lives in a
    temporary folder whose path is no business of the client's."""
    try:
        yield
    except InputError as exc:
        message = str(exc).replace(str(path), Path(path).name)
        if message == str(exc):
            raise
        raise InputError(message) from None
