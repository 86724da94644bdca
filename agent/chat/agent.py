"""The chat agent: each turn the LLM picks a registered tool, rules fill its arguments, the answer streams.

One turn: attached media go through their converter tools (describe_image, transcribe_audio) and
their text joins the message; the message's slots update the session state (new request or
refinement); the tool chooser picks a registered tool (constrained LLM scoring + rule triggers);
arguments come from the state and are validated against the tool's hints; the observation becomes
the answer, which cites each item with its explanation and is streamed piece by piece.

The answer streams as it is produced: the tool runs under :func:`agent.core.deferral.deferring`,
so where the recommender's explainer honours it (the server's model fronts, agent/server/queues.py)
the ranking comes back first: the ``items`` event and the answer's text up to the first pending
explanation go out at once, then an ``explanation`` event per item as its batch is done, with the
answer text each one settles, then ``done``.

One :class:`ChatAgent` (models, tools, catalog) serves many :class:`ChatSession` objects, each with
its own state and lock; the LLM itself is shared and locked in agent/llm, so sessions may run
in different threads.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import prompts
from agent.chat.catalog import ChatCatalog
from agent.chat.slots import extract_slots
from agent.chat.state import ChatState
from agent.chat.tool_choice import ToolChooser
from agent.chat.tools import Observation, Tool, ToolContext, load_tools
from agent.core.batching import RANKING
from agent.core.config import Settings, load_settings
from agent.core.deferral import Deferred, deferring
from agent.core.errors import Busy, InputError
from agent.core.text import display_title
from agent.core.timing import Stopwatch

ROLES = ("user", "assistant", "system")
_PIECE = re.compile(r"\S+\s*|\s+")
PENDING = "\x00pending"
"""Stands in for an explanation not generated yet: answer text that differs between it and none
depends on the pending explanation and waits for it."""
log = logging.getLogger(__name__)


class ChatAgent:
    """Shared by every session: the recommender, the tools, the tool chooser and the catalog."""

    def __init__(self, recommender, settings: Settings | None = None, *, catalog: ChatCatalog | None = None,
                 tools: dict[str, Tool] | None = None, chooser: ToolChooser | None = None,
                 local_files: bool = False):
        self.recommender = recommender
        self.settings = settings or getattr(recommender, "settings", None) or load_settings()
        self.local_files = local_files
        """A file named in a message may be opened: the local CLI REPL only, never a server."""
        self._catalog, self._tools, self._chooser = catalog, tools, chooser
        self._lock = threading.Lock()
        self.wrap_chooser: Callable[[ToolChooser], ToolChooser] = lambda chooser: chooser
        """Applied to the tool chooser as it is built: the server puts its batching queue in front here."""

    @property
    def catalog(self) -> ChatCatalog:
        with self._lock:
            if self._catalog is None:  # built from the project by agent.cli (chat, serve)
                raise InputError("the chat agent has no catalog: build it with catalog=ChatCatalog(items, interactions)")
            return self._catalog

    @property
    def tools(self) -> dict[str, Tool]:
        """The given tools, else every registered one, its text in the catalog's words."""
        if self._tools is None:
            words = self.catalog.words  # the catalog property takes the lock itself
            with self._lock:
                if self._tools is None:
                    self._tools = load_tools(words=words)
        return self._tools

    @property
    def chooser(self) -> ToolChooser:
        if self._chooser is None:
            self._build_chooser(self.catalog.words)  # the catalog property takes the lock itself
        return self._chooser

    def _build_chooser(self, words) -> None:
        """The settings' tool chooser, its prompt in the catalog's ``words``."""
        with self._lock:
            if self._chooser is None:
                from agent.provision.models import llm_for

                settings = self.settings
                self._chooser = self.wrap_chooser(ToolChooser(lambda: llm_for(settings, "tool_choice"),
                                                              mode=settings.chat_tool_choice,
                                                              style=settings.chat_tool_prompt, words=words))

    def context(self, state: ChatState, uploads: tuple[str, ...] = ()) -> ToolContext:
        return ToolContext(recommender=self.recommender, catalog=self.catalog, settings=self.settings, state=state,
                           uploads=uploads, local_files=self.local_files)

    def session(self, user: str | None = None) -> ChatSession:
        return ChatSession(self, user)

    def session_from_messages(self, messages: list[dict], user: str | None = None) -> tuple[ChatSession, str]:
        """Rebuild a session from an OpenAI-style transcript without running the LLM; return it with
        the last user message, which the caller then sends."""
        turns = [_checked_message(m, i) for i, m in enumerate(messages or [])]
        last = max((i for i, m in enumerate(turns) if m["role"] == "user"), default=None)
        if last is None:
            raise InputError("the messages contain no user message to answer: end with {\"role\": \"user\", ...}")
        # Its text may be empty: a message carrying only an image or a voice note is answered from
        # the media, and send() refuses a turn with neither text nor media.
        session = self.session(user)
        for message in turns[:last]:
            session.replay(message)
        return session, turns[last]["content"]


def _checked_message(message, index: int) -> dict:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise InputError(f"message {index} must be an object with role one of {', '.join(ROLES)}")
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts: keep the text parts
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    if not isinstance(content, str):
        raise InputError(f"message {index}: content must be a string (or a list of text parts)")
    return {"role": message["role"], "content": content}


class ChatSession:
    """One conversation: its state, and a claim so that one session's turns never interleave."""

    def __init__(self, agent: ChatAgent, user: str | None = None):
        self.agent = agent
        self.state = ChatState(user=user)
        self._lock = threading.Lock()
        """Guards ``_busy`` for a moment; never held across a ``yield``."""
        self._busy = False
        self._clock = Stopwatch()

    @property
    def history(self) -> list[dict]:
        return list(self.state.turns)

    @contextmanager
    def _claim(self) -> Iterator[None]:
        """The session for one turn (or a reset, a replay): refused at once with :class:`Busy`, never
        waited for, while another turn runs, so a turn left suspended by a slow or vanished client
        cannot hang the next one; the turn ends when its generator is closed. The history is
        trimmed to ``chat_session_max_turns`` messages and ``max_conversation_chars`` characters
        as the claim ends."""
        with self._lock:
            if self._busy:
                raise Busy("a turn is already running on this chat session; wait for its done event")
            self._busy = True
        try:
            yield
        finally:
            settings = self.agent.settings
            self.state.trim(settings.chat_session_max_turns, settings.max_conversation_chars)
            with self._lock:
                self._busy = False

    def reset(self) -> None:
        with self._claim():
            self.state.reset()

    def replay(self, message: dict) -> None:
        """Apply an earlier turn of a transcript to the state (rules only, no LLM, no tools)."""
        with self._claim():
            if message["role"] == "user":
                self.state.update(extract_slots(message["content"], self.agent.catalog))
            elif message["role"] == "assistant":
                self.state.remember_answer(message["content"])
            self.state.turns.append(message)

    def send(self, text: str, image: Path | None = None, audio: Path | None = None,
             video: Path | None = None) -> Iterator[dict]:
        """Stream one turn's events: tool, observation, items, token..., done. Input is checked now,
        before the first event, so a bad message raises InputError at the call."""
        text = (text or "").strip()
        if not text and image is None and audio is None and video is None:
            raise InputError("the message is empty: type a request, or attach an image, a voice note or a video")
        for kind, path in (("image", image), ("audio", audio), ("video", video)):
            if path is not None and not Path(path).is_file():  # named by its input, not its server path
                raise InputError(f"the attached {kind} file was not found ({Path(path).name})")
        return self._locked_turn(text, image, audio, video)

    def _locked_turn(self, text: str, image: Path | None, audio: Path | None, video: Path | None) -> Iterator[dict]:
        """The turn under the session's claim, taken at the first event (a generator never started
        holds nothing); ``close()`` at any event ends the turn and frees the session."""
        with self._claim():
            yield from self._turn(text, image, audio, video)

    def _turn(self, text: str, image: Path | None, audio: Path | None, video: Path | None = None) -> Iterator[dict]:
        self._clock = Stopwatch()  # seconds per stage of this turn, in its done event
        state = self.state
        message = text
        for tool_name, path in (("describe_image", image), ("transcribe_audio", audio), ("describe_video", video)):
            if path is None:
                continue
            obs, _ = yield from self._run_tool(tool_name, {"path": str(path)}, uploads=(str(path),))
            if not obs.ok:
                state.turns.append({"role": "user", "content": text})
                yield from self._finish(obs, tool_name)
                return
            heard = obs.data.get("text", "")
            if message:
                message = f"{message} {heard}"
            elif tool_name == "describe_image":
                named = self.agent.catalog.title_on_image(heard)
                title = display_title(self.agent.catalog.items[named].title) if named else ""
                message = prompts.render("chat_image_request.j2", text=heard, title=title,
                                         words=self.agent.catalog.words)
            else:
                message = heard
        with RANKING.hold():  # explanations of earlier chats wait while this one ranks (agent.core.batching)
            with self._clock("understand"):  # what a voice note or a photo said is part of the conversation
                slots = state.read_message(message, self.agent.catalog, self.agent.settings,
                                           paths=self.agent.local_files)
            tools = state.feasible(self.agent.tools, slots)
            with self._clock("tool_choice"):
                choice = self.agent.chooser.choose(tools, message, state.shown_labels(), state.user)
            arguments = state.arguments(tools[choice.name].parameters, slots)
            obs, later = yield from self._run_tool(choice.name, arguments)
        state.after_tool(obs)
        yield from self._finish(obs, choice.name, later)

    def _run_tool(self, name: str, arguments: dict, uploads: tuple[str, ...] = ()):
        """Call one tool, yielding its events; returns the observation and the model calls it deferred
        (``yield from``). ``uploads``: the files attached to this turn, the only ones a media tool
        reads outside the local REPL."""
        tools = self.agent.tools
        shown = arguments
        if uploads and not self.agent.local_files:  # a client sees its file's kind, not the server's temp path
            shown = {**arguments, "path": Path(arguments["path"]).name}
        yield {"type": "tool", "name": name, "arguments": shown}
        later = Deferred()
        if name not in tools:
            obs = Observation(f"error: no tool named {name!r} is registered; see `recsage plugins`", ok=False)
        else:
            with self._clock("tool"), deferring() as later:  # no yield inside: the deferral is this step's alone
                obs = tools[name](self.agent.context(self.state, uploads), arguments)
        yield {"type": "observation", "text": obs.text, "ok": obs.ok}
        return obs, later

    def _finish(self, obs: Observation, tool_name: str, later: Deferred | None = None) -> Iterator[dict]:
        if obs.items:  # a copy: explanations arriving later fill obs.items, the done event's
            yield {"type": "items", "items": [dict(item) for item in obs.items]}
        pending = _pending_ids(later)
        sent = yield from _tokens("", self._settled(obs, tool_name, pending))
        for rows, results in _run_deferred(later, self._clock):
            for evidence, explanation in zip(rows, results, strict=True):
                yield from _explained(obs.items, evidence, explanation)
                pending.discard(str(evidence.item_id))
            sent = yield from _tokens(sent, self._settled(obs, tool_name, pending))
        answer = self.render_answer(obs, tool_name)
        if not answer.startswith(sent):  # the template let a pending explanation change earlier text
            log.warning("the streamed answer is not a prefix of the final one; the done event has the final one")
        yield from _tokens(sent, answer)
        self.state.turns.append({"role": "assistant", "content": answer})
        yield {"type": "done", "answer": answer, "items": obs.items, "tool": tool_name, "request": self.request(),
               "timings": self._clock.totals()}

    def _settled(self, obs: Observation, tool_name: str, pending: set[str]) -> str:
        """The answer's text that no pending explanation can change: the common start of the answer
        rendered with them missing and with a stand-in."""
        if not pending:
            return self.render_answer(obs, tool_name)
        probe = [{**item, "explanation": PENDING} if str(item.get("id")) in pending else item for item in obs.items]
        return os.path.commonprefix([self.render_answer(obs, tool_name),
                                     self.render_answer(dataclasses.replace(obs, items=probe), tool_name)])

    def render_answer(self, obs: Observation, tool_name: str) -> str:
        state = self.state
        focus = self.agent.catalog.label(state.focus) if state.focus else ""
        return prompts.render(
            "chat_answer.j2", ok=obs.ok, items=obs.items, observation=obs.text.removeprefix("error: "),
            tool=tool_name, query=state.query, constraints=self.constraints(), focus=focus, user=state.user,
            words=self.agent.catalog.words,
        )

    def constraints(self) -> list[str]:
        """The refinements in force, in words, for the answer's first line."""
        state = self.state
        out = [value for values in state.facets.values() for value in values]
        if state.year_min is not None and state.year_max is not None:
            out.append(f"{state.year_min}-{state.year_max}")
        elif state.year_min is not None:
            out.append(f"from {state.year_min}")
        elif state.year_max is not None:
            out.append(f"up to {state.year_max}")
        if state.mood:
            out.append(state.mood)
        if state.excluded:
            out.append(f"{len(state.excluded)} excluded")
        return out

    def request(self) -> dict:
        """The state behind the answer, for JSON clients."""
        s = self.state
        return {"user": s.user, "query": s.query, "mood": s.mood,
                "facets": {name: list(values) for name, values in s.facets.items()},
                "year_min": s.year_min, "year_max": s.year_max, "excluded": list(s.excluded), "focus": s.focus}


def _pending_ids(later: Deferred | None) -> set[str]:
    """Items whose explanation a deferred call will produce."""
    return {str(getattr(row, "item_id", "")) for _, rows in (later.calls if later else ()) for row in rows}


def _run_deferred(later: Deferred | None, clock: Stopwatch) -> Iterator[tuple[list, list]]:
    """The deferred calls' results, timed as "explain"; a failing call leaves its items without
    explanations (the answer still lists them; the items are already shown)."""
    calls = iter(later.run() if later is not None else ())
    while True:
        try:
            with clock("explain"):
                step = next(calls, None)
        except Exception:
            log.exception("deferred explanations failed")
            return
        if step is None:
            return
        yield step


def _explained(items: list[dict], evidence, explanation) -> Iterator[dict]:
    """Put one explanation into its item (the done event's items carry it) and announce it."""
    for item in items:
        if str(item.get("id")) == str(evidence.item_id):
            item.update(explanation.to_json())
            yield {"type": "explanation", "id": item["id"], "rank": item.get("rank"), **explanation.to_json()}


def _tokens(sent: str, text: str) -> Iterator[dict]:
    """Token events for what ``text`` adds to the ``sent`` answer text; returns what is sent now."""
    if len(text) <= len(sent) or not text.startswith(sent):
        return sent
    for piece in _PIECE.findall(text[len(sent):]):
        yield {"type": "token", "text": piece}
    return text
