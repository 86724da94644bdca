"""Media references of catalog rows: paths confined to a folder, URLs kept as metadata.

A catalog row may not make ingest or the poster route read any other file of the machine, so a
media path must resolve (symlinks and ``..`` included) inside the catalog's folder (or the
--posters folder). Image and video URLs are kept as ``image_url`` / ``video_url`` metadata and
never fetched (see README, catalog section); audio must be a file.
"""

from __future__ import annotations

from pathlib import Path

from agent.ingest.images import is_url

MEDIA_KINDS = ("image", "audio", "video")
URL_METADATA = {"image": "image_url", "video": "video_url"}
"""Media kinds whose URLs are kept (as this metadata key); a URL of any other kind is refused."""


class MediaRefused(ValueError):
    """A media reference that must not be read; the row is kept without it."""


def confined_path(value: str, folder: Path, kind: str) -> str:
    """The absolute path of ``value`` (relative to ``folder``) if it lies inside ``folder`` once
    symlinks and ``..`` are resolved; MediaRefused otherwise (``~`` is not expanded: it is a name)."""
    root = Path(folder).resolve()
    try:
        target = (root / value).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte
        raise MediaRefused(
            f"{kind} path {value!r} cannot be resolved; media must be files in the catalog's folder"
        ) from None
    if not target.is_relative_to(root):
        raise MediaRefused(f"{kind} path {value!r} is outside the catalog's folder; the row is kept without it")
    return str(target)


def resolve_media(data: dict, metadata: dict, base_dir: Path) -> list[str]:
    """Resolve the media fields of ``data`` in place: URLs move to ``metadata`` (never fetched) or
    are refused, paths stay only inside ``base_dir``. Returns what was refused."""
    problems = []
    for kind in MEDIA_KINDS:
        value = data.get(kind)
        if not isinstance(value, str):
            continue
        if is_url(value):
            data.pop(kind)
            if kind in URL_METADATA:
                metadata[URL_METADATA[kind]] = value
            else:
                problems.append(f"{kind} {value!r} is a URL; {kind} must be a file in the catalog's folder")
            continue
        try:
            data[kind] = confined_path(value, base_dir, kind)
        except MediaRefused as exc:
            data.pop(kind)
            problems.append(str(exc))
    return problems
