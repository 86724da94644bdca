"""Plugin hook specifications (pluggy), in the shape of simonw/llm."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("recsage")
hookimpl = pluggy.HookimplMarker("recsage")


@hookspec
def register_converters(register):
    """Register modality converters: call ``register(ConverterClass)`` for each."""


@hookspec
def register_tools(register):
    """Register agent tools: call ``register(function_or_tool)`` for each."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``recsage`` command group."""
