"""The ``recsage`` command line. Bad input exits 2 with a one-line message, never a traceback.

The root group and the shared options live in agent.cli.base; importing each command module below
attaches its commands to that group, then :func:`main` adds the commands plugins register."""

from __future__ import annotations

import sys

import click

from agent.cli import (  # noqa: F401 - imported for their commands
    bench_tasks,
    chat,
    config,
    converters,
    engines,
    evaluate,
    finetune,
    image_encoder,
    ingest,
    project,
    provision,
    recommend,
    rerank,
    retrieval,
    serve,
)
from agent.cli.base import cli
from agent.core.errors import RecsageError

__all__ = ["cli", "main"]


def main() -> None:
    from agent.plugins import register_commands

    try:
        register_commands(cli)
    except RecsageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    cli(prog_name="recsage")


if __name__ == "__main__":
    main()
