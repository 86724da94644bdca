"""Multi-turn chat state: what the person asked for, what they refined, what they were shown.

"something lighter", "not that one", "more like the second one" and "only after 2000" only make
sense against the previous turn, so each message is read as either a new request (it has words of
its own) or a refinement of the current one, and the next tool's arguments come from the state.
Everything here is plain rules over :class:`agent.chat.slots.Slots`: deterministic and unit-testable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from typing import Any

from agent.chat.request import read_request
from agent.chat.slots import MOOD_AVOID, MOOD_QUERY, Slots, extract_slots
from agent.core.errors import InputError

_RESTRICT = re.compile(r"\b(only|just|keep|filter|limit|restrict|narrow)\b", re.IGNORECASE)
_ANSWER_ID = re.compile(r"\(id ([^)\s]+)\)")
"""How an answer cites an item (prompts/chat_answer.j2): lets a client's transcript rebuild the state."""
STATE_FORMAT = 1
"""Version of :meth:`ChatState.to_dict`'s layout: a replica reading another version starts afresh."""


@dataclass
class ChatState:
    user: str | None = None
    query: str = ""
    """The current request's text (the last message that asked for something new)."""
    search: str = ""
    """The same request as search words (:attr:`agent.chat.slots.Slots.search_text`)."""
    mood: str | None = None
    facets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Facet values the request keeps (OR within a facet, AND across facets)."""
    year_min: int | None = None
    year_max: int | None = None
    excluded: list[str] = field(default_factory=list)
    shown: list[dict] = field(default_factory=list)
    """Items of the last answer, in order ("the second one" = shown[1])."""
    focus: str | None = None
    """The item the conversation is about ("that one"): last detailed, compared or excluded."""
    liked: list[str] = field(default_factory=list)
    """Titles the conversation says the person liked (agent.chat.request): a pseudo-history."""
    avoid: list[str] = field(default_factory=list)
    """Titles named, seen or disliked in the conversation: never recommended."""
    mentioned: list[str] = field(default_factory=list)
    """Every title either side named (agent.chat.request): a second pseudo-history."""
    turns: list[dict] = field(default_factory=list)
    """The conversation as OpenAI-style messages (bounded by :meth:`trim` after every turn)."""

    def trim(self, max_turns: int, max_chars: int) -> None:
        """Drop the oldest turns beyond ``max_turns`` messages or ``max_chars`` characters of
        content; the newest turn always stays. Sessions live in the server's memory for as long as
        they are used, so their size is bounded, not only their number."""
        del self.turns[:-max_turns]
        total = sum(len(str(t.get("content", ""))) for t in self.turns)
        while total > max_chars and len(self.turns) > 1:
            total -= len(str(self.turns.pop(0).get("content", "")))

    def reset(self) -> None:
        user = self.user
        self.__init__()
        self.user = user

    def shown_labels(self) -> list[str]:
        return [f"{i.get('title')} ({i.get('year')})" if i.get("year") else str(i.get("title")) for i in self.shown]

    def referenced_item(self, slots: Slots) -> str | None:
        """The item a message points at: named (id/title), by position, or 'that one'."""
        if slots.item_id:
            return slots.item_id
        if slots.ordinal is not None and self.shown:
            index = slots.ordinal
            if -len(self.shown) <= index < len(self.shown):
                return str(self.shown[index]["id"])
            return None
        if slots.refers_back or slots.negate:
            return self.focus or (str(self.shown[0]["id"]) if self.shown else None)
        return None

    def is_new_request(self, slots: Slots) -> bool:
        """A message with words of its own asks for something new; one made only of refinement
        words (years, moods, 'not that one', 'only comedies', 'just Acme') changes the current request."""
        if not self.query:
            return bool(slots.content_words or slots.facets or slots.mood or slots.has_years)
        if slots.negate or slots.ordinal is not None or (slots.refers_back and not slots.content_words):
            return False
        facet_only = bool(slots.facets) and _RESTRICT.search(slots.text) is not None
        return bool(slots.content_words) and not facet_only

    def update(self, slots: Slots) -> None:
        """Apply one message before its tool runs."""
        if slots.user:
            self.user = slots.user
        if self.is_new_request(slots):
            self.query, self.search, self.mood, self.excluded = slots.text, slots.search_text, None, []
            self.facets, self.year_min, self.year_max = dict(slots.facets), slots.year_min, slots.year_max
        else:
            self.facets = {**self.facets, **slots.facets}  # a facet named again is replaced, others kept
            if slots.has_years:
                self.year_min = slots.year_min if slots.year_min is not None else self.year_min
                self.year_max = slots.year_max if slots.year_max is not None else self.year_max
                if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
                    self.year_min, self.year_max = slots.year_min, slots.year_max
        if slots.mood:  # a mood overrides genres it avoids ("a thriller" then "something lighter")
            self.mood = slots.mood
            genres = tuple(g for g in self.facets.get("genres", ()) if g not in MOOD_AVOID[slots.mood])
            self.facets = {n: v for n, v in {**self.facets, "genres": genres}.items() if v}
        if slots.negate:
            target = self.referenced_item(slots)
            if target and target not in self.excluded:
                self.excluded.append(target)
                self.focus = None
        elif (ref := self.referenced_item(slots)) is not None:
            self.focus = ref

    def read_message(self, message: str, catalog, settings=None, *, paths: bool = False) -> Slots:
        """Take one user message and return its slots: they update the current request, then the
        whole conversation is read again (agent.chat.request.read_request). Every chat turn and
        `recommend --query` (a conversation of one message: :func:`read_query`) go through here."""
        slots = extract_slots(message, catalog, paths=paths)
        self.turns.append({"role": "user", "content": message})
        self.update(slots)
        self.read_conversation(read_request(self.turns, catalog, settings))
        return slots

    def read_conversation(self, request) -> None:
        """Take the whole conversation's titles (an agent.chat.request.Request): liked titles steer
        retrieval, named/seen/disliked ones are never recommended again."""
        self.liked = request.liked_ids
        self.avoid = request.exclude
        self.mentioned = list(request.mentioned)

    def query_text(self) -> str:
        """The request as the retriever should read it: the text plus the mood's words."""
        return " ".join(p for p in (self.search or self.query, MOOD_QUERY.get(self.mood or "", "")) if p)

    def request_arguments(self) -> dict:
        """The current request as the recommend tool's arguments: search words (plus the mood's),
        facets, years, exclusions, the pseudo-histories and the genres a mood avoids."""
        return {
            "query": self.query_text(),
            "facets": {name: list(values) for name, values in self.facets.items()},
            "year_min": self.year_min,
            "year_max": self.year_max,
            "exclude": list(dict.fromkeys([*self.excluded, *self.avoid])),
            "liked": list(self.liked),
            "mentioned": list(self.mentioned),
            "avoid_genres": list(MOOD_AVOID.get(self.mood or "", ())),
        }

    def arguments(self, parameters: dict, slots: Slots) -> dict:
        """Arguments for a tool from the state and the message, by parameter name; a parameter the
        state knows nothing about gets the message text when it is a required string."""
        known = {
            **self.request_arguments(),
            "query": self.query_text() or slots.text,
            "user": self.user,
            "item": self.referenced_item(slots),
            "genres": list(self.facets.get("genres", ())),  # for tools that take genres alone
            "genre": self.facets["genres"][0] if self.facets.get("genres") else None,
            "path": slots.path,
        }
        required = set(parameters.get("required", []))
        out = {}
        for name in parameters.get("properties", {}):
            value = known.get(name)
            if value is None and name in required and name not in known:
                value = slots.text
            if value is not None and value != [] and value != {}:
                out[name] = value
        return out

    def feasible(self, tools: dict, slots: Slots) -> dict:
        """The tools whose required arguments this state and message can fill (all, if none can):
        a tool that needs a file, a user or an item nobody named cannot answer this turn."""
        ok = {}
        for name, tool in tools.items():
            parameters = tool.parameters
            filled = self.arguments(parameters, slots)
            if all(r in filled for r in parameters.get("required", [])):
                ok[name] = tool
        return ok or dict(tools)

    def after_tool(self, observation) -> None:
        """Remember what was shown and which item the talk is about."""
        if observation.items:
            self.shown = list(observation.items)
        if observation.data.get("focus"):
            self.focus = str(observation.data["focus"])

    def remember_answer(self, answer: str) -> None:
        """Rebuild ``shown`` from an answer's text (a client replays an earlier transcript)."""
        ids = _ANSWER_ID.findall(answer)
        if ids:
            self.shown = [{"id": i, "title": i} for i in ids]

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON values (a session store keeps it as JSON text, never pickle):
        tuples become lists, numpy scalars in shown items their Python values."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.loads(json.dumps({"format": STATE_FORMAT, **data}, ensure_ascii=False, default=_plain))

    @classmethod
    def from_dict(cls, data: Any) -> ChatState:
        """The state :meth:`to_dict` wrote; anything else is an ``InputError`` saying what is wrong."""
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise InputError(f"not a chat state of format {STATE_FORMAT} (found {found!r})")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - {"format"})
        if unknown:
            raise InputError(f"unknown chat state field(s) {unknown}; known: {sorted(names)}")
        values = {name: data[name] for name in names if name in data}
        for name, value in values.items():
            _check_field(name, value)
        values["facets"] = {name: tuple(v) for name, v in values.get("facets", {}).items()}
        return cls(**values)


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "user": (str, type(None)), "query": (str,), "search": (str,), "mood": (str, type(None)), "facets": (dict,),
    "year_min": (int, type(None)), "year_max": (int, type(None)), "excluded": (list,), "shown": (list,),
    "focus": (str, type(None)), "liked": (list,), "avoid": (list,), "turns": (list,),
    "mentioned": (list,),
}
"""The JSON type of each stored field (``bool`` is refused where an int is meant)."""


def _check_field(name: str, value: Any) -> None:
    ok = isinstance(value, _FIELD_TYPES[name]) and not isinstance(value, bool)
    if ok and name == "facets":
        ok = all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values())
    elif ok and name in ("excluded", "liked", "avoid", "mentioned"):
        ok = all(isinstance(x, str) for x in value)
    elif ok and name in ("shown", "turns"):
        ok = all(isinstance(x, dict) for x in value)
    if not ok:
        raise InputError(f"chat state field {name!r} has the wrong type ({type(value).__name__}: {value!r:.80})")


def _plain(value: Any) -> Any:
    """numpy scalars (scores in shown items) as Python numbers; anything else as its text."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def read_query(query: str, catalog, settings=None) -> dict:
    """`recommend --query` and ``/v1/recommend``: the query read exactly as a chat's first message,
    as retrieval arguments (search words, facets, years, exclusions with every item of a genre the
    mood avoids, the pseudo-histories). So a request ranks the same through either door."""
    state = ChatState()
    state.read_message(query, catalog, settings)
    arguments = state.request_arguments()
    avoid = arguments.pop("avoid_genres")
    arguments["exclude"] = list(dict.fromkeys([*arguments["exclude"], *catalog.with_facet_values("genres", avoid)]))
    return arguments
