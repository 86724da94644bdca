"""Terminal output helpers."""

from __future__ import annotations


def table_console(stderr: bool = False):
    """A rich console that does not squeeze tables into 80 columns when output is piped."""
    from rich.console import Console

    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=160)
