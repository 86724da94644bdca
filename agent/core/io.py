"""File input and output shared by every stage: JSON and JSONL reading and writing (atomic where a
file is state), sha256, and pydantic error text."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationError


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


NonBlankStr = Annotated[str, AfterValidator(_not_blank)]
"""A string field that is stripped and must not be blank."""


def iter_json_objects(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, object, None) per JSON-object line, or (line number, None, reason) when the
    line is not one; blank lines are skipped. Callers decide whether a bad row skips or stops."""
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield line_no, None, f"invalid JSON: {exc.msg}"
                continue
            if not isinstance(row, dict):
                yield line_no, None, f"expected a JSON object, got {type(row).__name__}"
                continue
            yield line_no, row, None


def validation_reason(exc: ValidationError) -> str:
    """One line naming each invalid field and why."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'row'}: {err['msg']}" for err in exc.errors())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``:
    a reader or a killed writer never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(data, indent: int | None = 1) -> str:
    """The one JSON text format: UTF-8 kept readable, anything unusual (paths, numpy) as ``str``."""
    return json.dumps(data, indent=indent, ensure_ascii=False, default=str)


def write_json(path: Path, data, indent: int | None = 1) -> None:
    """Write ``data`` as JSON, atomically (every JSON file recsage writes is state or a report)."""
    atomic_write_text(path, dumps_json(data, indent) + "\n")


def read_json(path: Path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    """Write one JSON object per line, atomically; returns the number of rows."""
    lines = [json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows]
    atomic_write_text(path, "".join(lines))
    return len(lines)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
