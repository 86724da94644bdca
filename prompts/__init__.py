"""Prompt and card templates as data files (Jinja2, StrictUndefined: a missing variable is an error)."""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import jinja2

TEMPLATE_DIR = Path(str(importlib.resources.files(__name__)))
"""Where the templates are installed (package data, found the same way in a checkout and a wheel)."""


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text for an LLM, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(name: str, **variables) -> str:
    return environment().get_template(name).render(**variables).strip()
