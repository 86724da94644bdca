"""Line-numbered JSONL reading and pydantic error text shared by catalogs, benchmarks and training data."""

from __future__ import annotations

import json
from collections.abc import Iterator
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
