"""The agent-tool protocol: a tool is a plain typed function whose docstring is what the LLM reads.

In the shape of smolagents' ``@tool``: the type hints are the argument schema, the docstring's first
line is the description the tool chooser shows the LLM. A parameter annotated :class:`ToolContext`
is filled in by the agent (recommender, catalog, session state) and never shown to the LLM. A tool
that holds a model is a class with a typed ``__call__`` that loads the model on first use.

Arguments are validated against the hints before the call, and every failure (bad arguments, an
InputError from the recommender, a crash inside a plugin) comes back as an :class:`Observation`
with ``ok=False`` whose text says what went wrong, so the agent can answer instead of crashing.

A description, example or trigger may name the catalog's words as placeholders (``{noun}``,
``{nouns}``, ``{Nouns}``, ``{verb}``...: :data:`WORD_PLACEHOLDERS`), filled from the catalog's
:class:`~agent.core.project.CatalogWords` as the tool is loaded, so that a shop's chat shows "Recommend
products" where MovieLens's shows "Recommend movies". Text without them (any third-party tool that
knows nothing of words) is shown as written; other braces are left alone.
"""

from __future__ import annotations

import inspect
import logging
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from agent.core.errors import InputError, RecsageError
from agent.core.io import validation_reason
from agent.core.project import MOVIE_WORDS, CatalogWords

log = logging.getLogger(__name__)


@dataclass
class ToolContext:
    """What a tool may use besides its arguments; the agent builds one per call."""

    recommender: Any
    """An :class:`agent.recommend.Recommender` (or anything with its methods)."""
    catalog: Any = None
    """An :class:`agent.chat.catalog.ChatCatalog`: titles, facts and user histories."""
    settings: Any = None
    state: Any = None
    """The session's :class:`agent.chat.state.ChatState` (read-only for tools)."""
    uploads: tuple[str, ...] = ()
    """Files this turn received as attachments (``image=``/``audio=`` of ChatSession.send)."""
    local_files: bool = False
    """True only in the local CLI REPL: a path typed in a message may be opened. A server never
    sets it, so a remote message cannot make the server open one of its own files."""

    @property
    def words(self) -> CatalogWords:
        """The catalog's words, for a tool's messages; without a catalog, ChatCatalog's default."""
        return getattr(self.catalog, "words", MOVIE_WORDS)


def media_source(context: ToolContext, path: str, kind: str) -> tuple[Path, str]:
    """The file a media tool may open and how to name it in messages: an attachment of this turn
    (named "the attached {kind}", never by its temporary server path), or, in the local REPL only,
    any path. Anything else is refused without looking at the file system, so the refusal never
    tells whether a path exists."""
    if str(path) in context.uploads:
        return Path(path), f"the attached {kind}"
    if context.local_files:
        return Path(path).expanduser(), str(path)
    raise InputError(f"I can only read a file you attach: upload the {kind} with the message "
                     "(file names in a message are not opened)")


@dataclass
class Observation:
    """What a tool returns to the agent: text for the LLM/user and, optionally, items to show."""

    text: str
    items: list[dict] = field(default_factory=list)
    ok: bool = True
    data: dict = field(default_factory=dict)
    """Extra machine-readable facts (e.g. a transcript) the agent may use in the next step."""


class ToolError(RecsageError):
    """A tool cannot be built from this object (no name, no docstring, untyped parameter)."""


def tool(triggers: Iterable[str] = (), examples: Iterable[str] = (),
         neutral_examples: Iterable[str] | None = None) -> Callable:
    """Decorator that helps a small LLM choose this tool: ``triggers`` are regexes over a message
    (cheap rule features), ``examples`` are messages this tool answers (shown to the LLM);
    ``neutral_examples``, if given, replace them for a catalog that is not movies (an example such
    as "more like Jaws" only makes sense for movies). All may hold word placeholders.

    Optional: a plain typed function is a complete tool. A class tool sets the same attributes.
    """

    def mark(fn):
        fn.triggers, fn.examples = tuple(triggers), tuple(examples)
        fn.neutral_examples = None if neutral_examples is None else tuple(neutral_examples)
        return fn

    return mark


def _is_plain_callable(obj) -> bool:
    return inspect.isfunction(obj) or inspect.ismethod(obj)


def _docstring(obj) -> str | None:
    """A function's docstring; for a tool object, its own ``__call__``'s, else its class's."""
    if _is_plain_callable(obj):
        return inspect.getdoc(obj)
    own = getattr(type(obj).__call__, "__doc__", None)
    return inspect.cleandoc(own) if own else inspect.getdoc(type(obj))


WORD_PLACEHOLDERS = ("noun", "nouns", "Noun", "Nouns", "a_noun", "verb", "Verb", "audience")
"""The :class:`CatalogWords` attributes a tool's text may name as ``{name}``."""
_PLACEHOLDER = re.compile(r"\{(" + "|".join(WORD_PLACEHOLDERS) + r")\}")


def in_words(text: str, words: CatalogWords, pattern: bool = False) -> str:
    """``text`` with its word placeholders filled from ``words``, regex-escaped when ``text`` is a
    trigger (``pattern``); any other brace (a regex's ``{2}``, a JSON example) stays as written."""
    return _PLACEHOLDER.sub(lambda m: re.escape(getattr(words, m[1])) if pattern else getattr(words, m[1]), text)


def _examples(obj, words: CatalogWords) -> tuple[str, ...]:
    """The tool's examples for this catalog: its neutral ones, where it has some, unless the catalog is movies."""
    neutral = getattr(obj, "neutral_examples", None)
    chosen = getattr(obj, "examples", ()) if neutral is None or words.movie_examples else neutral
    return tuple(in_words(e, words) for e in chosen)


def _context_param(hint) -> bool:
    return hint is ToolContext or (isinstance(hint, str) and hint.endswith("ToolContext"))


class Tool:
    """A registered callable with its name, description, argument model and rule triggers, its text
    in the catalog's ``words`` (placeholders filled)."""

    def __init__(self, obj: Callable, words: CatalogWords = MOVIE_WORDS):
        self.obj = obj
        self.name: str = getattr(obj, "name", None) or getattr(obj, "__name__", "")
        if not self.name or not self.name.isidentifier():
            raise ToolError(f"tool {obj!r} needs a name that is a Python identifier (set .name)")
        doc = _docstring(obj)
        if not doc:
            raise ToolError(f"tool {self.name!r} has no docstring: the docstring is what the LLM reads")
        self.description = in_words(doc, words)
        self.summary = self.description.strip().splitlines()[0]
        self.triggers: tuple[str, ...] = tuple(in_words(t, words, pattern=True) for t in getattr(obj, "triggers", ()))
        self.examples: tuple[str, ...] = _examples(obj, words)
        self.context_arg, self.model = self._argument_model(obj)

    def _argument_model(self, obj: Callable):
        target = obj if _is_plain_callable(obj) else obj.__call__
        try:
            hints = typing.get_type_hints(target)
        except NameError as exc:  # an annotation names something its module does not define
            raise ToolError(f"tool {self.name!r}: cannot resolve its type hints ({exc})") from None
        fields: dict[str, tuple] = {}
        context_arg = None
        for name, param in inspect.signature(target).parameters.items():
            if name == "self":
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolError(f"tool {self.name!r}: *args/**kwargs cannot be described to the LLM")
            if name not in hints:
                raise ToolError(f"tool {self.name!r}: parameter {name!r} needs a type hint (it is the schema)")
            if _context_param(hints[name]):
                context_arg = name
                continue
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[name] = (hints[name], default)
        model = create_model(f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
        return context_arg, model

    @property
    def parameters(self) -> dict:
        """JSON schema of the arguments (what an API client or a constrained decoder needs)."""
        schema = self.model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    def schema(self) -> dict:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def validate(self, arguments: dict) -> dict:
        """Arguments coerced to the hinted types; raises ValidationError on a mismatch."""
        return self.model.model_validate(arguments or {}).model_dump()

    def __call__(self, context: ToolContext, arguments: dict) -> Observation:
        """Validate, run, and turn any failure into an observation the agent can act on."""
        try:
            values = self.validate(arguments)
        except ValidationError as exc:
            return Observation(f"error: {self.name} got invalid arguments: {validation_reason(exc)}", ok=False)
        if self.context_arg:
            values[self.context_arg] = context
        try:
            result = self.obj(**values)
        except RecsageError as exc:
            return Observation(f"error: {self.name}: {exc}", ok=False)
        except Exception as exc:  # a plugin's crash becomes text, never a crashed chat
            log.exception("tool %s failed", self.name)
            return Observation(f"error: {self.name} failed: {type(exc).__name__}: {exc}", ok=False)
        return as_observation(result)


def as_observation(result) -> Observation:
    """Tools may return an Observation, a string, or a dict with "text" (and "items")."""
    if isinstance(result, Observation):
        return result
    if isinstance(result, dict) and "text" in result:
        extra = {k: v for k, v in result.items() if k not in ("text", "items")}
        return Observation(str(result["text"]), list(result.get("items", [])), data=extra)
    return Observation(str(result))


def load_tools(registered: dict[str, tuple[Callable, str]] | None = None,
               words: CatalogWords = MOVIE_WORDS) -> dict[str, Tool]:
    """Every tool registered through the plugin hook, wrapped, its text in the catalog's ``words``;
    a malformed tool is an error naming it."""
    if registered is None:
        from agent.plugins import tool_functions

        registered = tool_functions()
    tools = {}
    for name, (obj, plugin) in registered.items():
        try:
            tools[name] = Tool(obj, words)
        except ToolError as exc:
            raise ToolError(f"plugin {plugin!r}: {exc}") from None
    return tools
