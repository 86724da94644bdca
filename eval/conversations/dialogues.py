"""ReDial dialogues as recommender turns to evaluate.

ReDial (Li et al., NeurIPS 2018) stores a dialogue as one JSON line: ``messages`` (``text`` with movies
written ``@<ReDial id>``, ``senderWorkerId``), ``movieMentions`` (ReDial id -> "Title (Year)") and
``initiatorWorkerId`` (the seeker). A test case is every recommender turn that names at least one
movie nobody named earlier, once the seeker has spoken: the context is the dialogue so far, with the
seeker as ``user`` and the recommender as ``assistant``, consecutive messages of one speaker joined
(crowd workers send a sentence in several pieces), and ``@id`` written out as "Title (Year)" so a
system reads what a person would have read.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from agent.core.errors import InputError
from agent.core.io import iter_json_objects

log = logging.getLogger(__name__)

_MENTION = re.compile(r"@(\d+)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Message:
    """One speaker's consecutive messages, joined."""

    role: str
    """``user`` (the seeker) or ``assistant`` (the recommender)."""
    content: str
    """The text with every ``@id`` written as "Title (Year)"."""
    movies: tuple[str, ...]
    """ReDial ids the text names, first mention order, each once."""


@dataclass(frozen=True)
class Dialogue:
    id: str
    line: int
    """Line of the dialogue in its file (1-based), for messages about it."""
    titles: dict[str, str]
    """ReDial id -> "Title (Year)" as the dialogue's ``movieMentions`` spell it."""
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class RecommenderTurn:
    """One test case: what was said before a recommender turn, and what that turn named first."""

    dialogue: str
    index: int
    """Position of the turn among the dialogue's joined messages (0-based)."""
    context: tuple[Message, ...]
    named_before: tuple[str, ...]
    """ReDial ids named earlier in the dialogue (by either speaker), first mention order."""
    new: tuple[str, ...]
    """ReDial ids this turn names that nobody named earlier."""

    def messages(self) -> list[dict]:
        """The context as OpenAI-style messages (``role``, ``content``)."""
        return [{"role": m.role, "content": m.content} for m in self.context]

    def seeker_text(self) -> str:
        """Everything the seeker said so far, in order."""
        return " ".join(m.content for m in self.context if m.role == "user")


def clean_title(title: str) -> str:
    """ReDial's spelling with runs of spaces collapsed ("Cosmos  (2015)" -> "Cosmos (2015)")."""
    return _SPACES.sub(" ", title).strip()


def _ordered_unique(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _written_out(text: str, titles: dict[str, str]) -> str:
    """``@id`` -> "Title (Year)"; an id the dialogue does not list keeps its ``@id``."""
    return _MENTION.sub(lambda m: titles.get(m.group(1), m.group(0)), text)


def _joined(raw_messages: list[dict], seeker, titles: dict[str, str]) -> tuple[Message, ...]:
    """Consecutive messages of one speaker joined into one :class:`Message`."""
    runs: list[tuple[str, list[str]]] = []
    for message in raw_messages:
        role = "user" if message["senderWorkerId"] == seeker else "assistant"
        text = str(message.get("text") or "").strip()
        if runs and runs[-1][0] == role:
            runs[-1][1].append(text)
        else:
            runs.append((role, [text]))
    out = []
    for role, texts in runs:
        raw = " ".join(t for t in texts if t)
        out.append(Message(role, _written_out(raw, titles), _ordered_unique(_MENTION.findall(raw))))
    return tuple(out)


def parse_dialogue(row: dict, line: int) -> Dialogue:
    """One ReDial JSON object as a :class:`Dialogue`; TypeError or ValueError says what is wrong."""
    messages = row.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise TypeError("'messages' must be a list of objects")
    if "initiatorWorkerId" not in row:
        raise ValueError("'initiatorWorkerId' (the seeker) is missing")
    if any("senderWorkerId" not in m for m in messages):
        raise ValueError("a message has no 'senderWorkerId'")
    mentions = row.get("movieMentions") or {}
    if not isinstance(mentions, dict):
        raise TypeError("'movieMentions' must be an object (ReDial id -> \"Title (Year)\")")
    titles = {str(k): clean_title(str(v)) for k, v in mentions.items() if v}
    return Dialogue(str(row.get("conversationId", f"line {line}")), line, titles,
                    _joined(messages, row["initiatorWorkerId"], titles))


def load_dialogues(path: Path, limit: int | None = None) -> tuple[list[Dialogue], list[str]]:
    """The dialogues of a ReDial JSONL file (the first ``limit``) and one "file:line: reason" per
    skipped line: a bad line never stops the rest, a file with no good line is an InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"dialogue file not found: {path} (ReDial JSONL, e.g. data/redial/valid_data.jsonl)")
    dialogues, problems = [], []
    for line, row, problem in iter_json_objects(path):
        if limit is not None and len(dialogues) >= limit:
            break
        try:
            if problem is not None:
                raise ValueError(problem)
            dialogues.append(parse_dialogue(row, line))
        except (TypeError, ValueError) as exc:
            problems.append(f"{path}:{line}: {exc}")
            log.warning("skipped dialogue %s:%d: %s", path, line, exc)
    if not dialogues:
        detail = f"; first problem: {problems[0]}" if problems else ""
        raise InputError(f"{path} holds no ReDial dialogue (one JSON object a line with 'messages', "
                         f"'movieMentions', 'initiatorWorkerId'){detail}")
    return dialogues, problems


def recommender_turns(dialogue: Dialogue) -> list[RecommenderTurn]:
    """Every recommender turn that names a movie nobody named earlier, after the seeker has spoken."""
    turns, named, seeker_spoke = [], [], False
    for index, message in enumerate(dialogue.messages):
        if message.role == "assistant" and seeker_spoke:
            new = tuple(m for m in message.movies if m not in named)
            if new:
                turns.append(RecommenderTurn(dialogue.id, index, dialogue.messages[:index], tuple(named), new))
        named.extend(m for m in message.movies if m not in named)
        seeker_spoke = seeker_spoke or message.role == "user"
    return turns
