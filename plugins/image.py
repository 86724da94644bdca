"""The image converter plugin: poster text through OCR (:mod:`plugins.ocr`) and a CLIP image
embedding with a zero-shot caption (:mod:`plugins.clip`, only with real weights)."""

from __future__ import annotations

from agent.hookspecs import hookimpl
from plugins.clip import ClipConverter, read_labels
from plugins.ocr import OcrConverter, clean_lines

__all__ = ["ClipConverter", "OcrConverter", "clean_lines", "read_labels", "register_converters"]


@hookimpl
def register_converters(register):
    register(OcrConverter)
    register(ClipConverter)
