"""The image converter plugin: poster text through OCR (:mod:`plugins.ocr`) and a CLIP image
embedding with a zero-shot caption (:mod:`plugins.clip`, only with real weights), or without them
an image encoder trained here (:mod:`plugins.poster_encoder`, only when one is configured)."""

from __future__ import annotations

from agent.hookspecs import hookimpl
from plugins.clip import ClipConverter, read_labels
from plugins.ocr import OcrConverter, clean_lines
from plugins.poster_encoder import PosterEncoderConverter

__all__ = ["ClipConverter", "OcrConverter", "PosterEncoderConverter", "clean_lines", "read_labels", "register_converters"]


@hookimpl
def register_converters(register):
    register(OcrConverter)
    register(ClipConverter)
    register(PosterEncoderConverter)
