"""Checks every media file passes before a decoder sees it (one rule for images and audio)."""

from __future__ import annotations

from pathlib import Path

from agent.core.errors import InputError


def check_media_file(source: str | Path, kind: str, max_bytes: int, setting: str) -> Path:
    """The path of a readable, non-empty local ``kind`` file within ``max_bytes``; else InputError."""
    path = Path(source).expanduser()
    if not path.exists():
        raise InputError(f"{kind} file not found: {path}; check the path (or the catalog's {kind} column)")
    if not path.is_file():
        raise InputError(f"{kind} path is not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{kind} file {path} is empty (0 bytes); re-download or remove it")
    if size > max_bytes:
        raise InputError(
            f"{kind} file {path} is {size:,} bytes, over the limit of {max_bytes:,} "
            f"(setting {setting}); shrink it or raise the limit"
        )
    return path
