"""Plugin manager: built-in and third-party plugins load through the same entry-point group."""

from __future__ import annotations

import functools
import importlib.metadata
import sys
from collections.abc import Callable

import pluggy

from agent import hookspecs
from agent.core.errors import RecsageError
from agent.ingest.converters import Converter

ENTRY_POINT_GROUP = "recsage"


class DuplicateName(RecsageError):
    """Two plugins registered the same name."""


LOAD_ERRORS: dict[str, str] = {}
"""Entry points that failed to import: name -> reason. One broken plugin must not stop the rest."""


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # noqa: BLE001 - reported by `recsage plugins` and on stderr
            LOAD_ERRORS[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
            print(f"warning: recsage plugin {ep.name!r} failed to load: {LOAD_ERRORS[ep.name]}", file=sys.stderr)
    return pm


def _plugin_name(pm: pluggy.PluginManager, impl) -> str:
    return pm.get_name(impl.plugin) or getattr(impl.plugin, "__name__", repr(impl.plugin))


def _collect(hook_name: str, key: Callable[[object], str]) -> dict[str, tuple[object, str]]:
    """Call one registration hook on every plugin; map name -> (object, plugin that gave it)."""
    pm = plugin_manager()
    registered: dict[str, tuple[object, str]] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin = _plugin_name(pm, impl)

        def register(obj, _plugin=plugin):
            name = key(obj)
            if name in registered:
                raise DuplicateName(
                    f"{hook_name}: name {name!r} is registered by both plugin "
                    f"{registered[name][1]!r} and plugin {_plugin!r}; uninstall or rename one"
                )
            registered[name] = (obj, _plugin)

        impl.function(register=register)
    return registered


def converter_classes() -> dict[str, tuple[type[Converter], str]]:
    """Converter classes by name, with the plugin that registered each."""
    return _collect("register_converters", key=lambda cls: cls.name)  # type: ignore[return-value]


def load_converter(settings, name: str) -> Converter:
    """An instance of the converter registered as ``name``."""
    classes = converter_classes()
    if name not in classes:
        raise RecsageError(f"no converter named {name!r} is registered; see `recsage plugins`")
    return classes[name][0](settings)


def tool_functions() -> dict[str, tuple[Callable, str]]:
    """Agent tools by name, with the plugin that registered each."""
    return _collect("register_tools", key=lambda fn: getattr(fn, "name", None) or fn.__name__)  # type: ignore[return-value]


def register_commands(cli) -> None:
    plugin_manager().hook.register_commands(cli=cli)
