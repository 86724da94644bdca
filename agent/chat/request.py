"""A structured request read from the whole conversation, by rules.

A person names movies across a dialogue ("I loved Super Troopers (2001)", "seen it", "not a fan of
horror"), and the assistant names some they then react to. The last message alone ("any other
ideas?") says little, so every message is read: catalog titles named by the person, titles the
assistant named that the person reacted to, facet values wanted and unwanted, years, and the
free-text need. Retrieval turns this into a pseudo-history (liked titles), a text search (need),
filters (facets, years) and exclusions (seen, disliked, named): agent.recommend.

Rules are the fast path; an LLM reading the conversation under a schema is later work (issue 13).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.chat.slots import extract_slots, extract_years
from agent.core.text import normalise

_YEAR_TITLE = re.compile(r"\((1[89]\d\d|20\d\d)\)")
_CLAUSE = re.compile(r"[.!?;]+\s+|\s+but\s+|\n+", re.IGNORECASE)
_WORDS = re.compile(r"[A-Za-z0-9'&:-]+")
MAX_TITLE_WORDS = 10
_NEGATIVE = re.compile(
    r"\b(did ?n[o']?t|do ?n[o']?t|does ?n[o']?t|never|could ?n[o']?t|was ?n[o']?t) (really )?"
    r"(like|enjoy|care for|love|get into|stand)\b|\bnot (a|really a|much of a|the biggest|big) fan\b|"
    r"\bhated?\b|\bhates\b|\bboring\b|\bdislike[ds]?\b|\bnot (really )?(into|for me)\b|\bawful\b|"
    r"\bterrible\b|\bworst\b|\bnot (good|great|funny)\b|\bwas ?n[o']?t (good|great|funny|a fan)\b",
    re.IGNORECASE)
_SEEN = re.compile(r"\b(seen|watched|saw)\b", re.IGNORECASE)
_NOT_SEEN = re.compile(r"\b(have ?n[o']?t|not|never|did ?n[o']?t) (yet )?(seen|watched|saw|see)\b", re.IGNORECASE)
_POSITIVE = re.compile(r"\b(lov(e|ed)|like[ds]?|enjoy(ed)?|great|good|awesome|favou?rite|amazing|fun|"
                       r"classic|best|funny|yes|yeah)\b", re.IGNORECASE)
_OPINION = re.compile(rf"{_NEGATIVE.pattern}|{_NOT_SEEN.pattern}|{_SEEN.pattern}|{_POSITIVE.pattern}", re.IGNORECASE)
_CHATTER = frozenset({"hi", "hello", "hey", "looking", "though", "did", "really", "too", "good", "well", "know",
                      "think", "sure", "sounds", "heard", "great", "yet", "am", "very", "much", "so", "all"})
_NO_FACET = re.compile(r"\b(no|not|nothing|without|hate|don'?t like|dislike)\b[^.,;]*$", re.IGNORECASE)


@dataclass
class Request:
    """What the conversation asks for; ids are catalog ids, first mention order."""

    liked: list[str] = field(default_factory=list)
    disliked: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    mentioned: list[str] = field(default_factory=list)
    """Every title either side named, first mention order: what the conversation is about, a
    second pseudo-history beside ``liked`` (a suggestion the person did not answer still says
    what kind of film is being talked about)."""
    named: list[str] = field(default_factory=list)
    """Every title the person named: never recommended again. Titles the assistant named stay
    recommendable ("only after 2000" narrows the list just shown) unless the person said seen or no."""
    facets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    unwanted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    year_min: int | None = None
    year_max: int | None = None
    need: str = ""
    """The person's words across the conversation, titles and chat filler removed."""
    ask: str = ""
    """What the last message asks for now, as search words ("" when it asks nothing new)."""

    @property
    def liked_ids(self) -> list[str]:
        """Liked titles the person did not also turn down: the pseudo-history."""
        return [i for i in self.liked if i not in self.disliked]

    @property
    def exclude(self) -> list[str]:
        return list(dict.fromkeys([*self.named, *self.seen, *self.disliked]))

    @classmethod
    def from_conversation(cls, messages: list[dict], catalog) -> Request:
        """``messages``: OpenAI-style ``{"role", "content"}``; ``catalog``: a ChatCatalog."""
        request, pending = cls(), []
        for message in messages:
            text = str(message.get("content") or "")
            titles, rest = _titles_and_rest(text, catalog)
            _add(request.mentioned, [t for t, _ in titles])
            if message.get("role") == "assistant":
                pending = [t for t, _ in titles]
            elif message.get("role") == "user":
                _add(request.named, [t for t, _ in titles])
                request._read_user(text, rest, titles, pending, catalog)
                pending = []
        return request

    def _read_user(self, text: str, rest: str, titles: list[tuple[str, str]], pending: list[str],
                   catalog) -> None:
        for item_id, clause in titles:
            self._judge(item_id, clause, default_liked=True)
        reaction = " ".join(c for c in _CLAUSE.split(text) if not named_titles(c, catalog))
        for item_id in pending:  # a reaction to the assistant's titles ("seen it, loved it", "not a fan")
            if item_id not in {t for t, _ in titles}:
                self._judge(item_id, reaction, default_liked=False)
        years = extract_years(rest)
        if years != (None, None):
            self.year_min, self.year_max = years
        rest = self._read_facets(rest, catalog)
        words = " ".join(w for w in extract_slots(_OPINION.sub(" ", rest), catalog).content_words
                         if w not in _CHATTER)
        self.need = " ".join(p for p in (self.need, words) if p)
        self.ask = words

    def _judge(self, item_id: str, clause: str, default_liked: bool) -> None:
        if _NEGATIVE.search(clause):
            _add(self.disliked, [item_id])
            return
        if _SEEN.search(clause) and not _NOT_SEEN.search(clause):
            _add(self.seen, [item_id])
        if default_liked or (_POSITIVE.search(clause) and not _NOT_SEEN.search(clause)):
            _add(self.liked, [item_id])

    def _read_facets(self, text: str, catalog) -> str:
        """Facet values wanted and unwanted; returns the text without the clauses that say no."""
        vocabulary = getattr(catalog, "vocabulary", None)
        if vocabulary is None:
            return text
        kept = []
        for clause in _CLAUSE.split(text):
            against = False
            for name, values in vocabulary.extract(clause).items():
                against = _mentions_against(clause, values)
                target = self.unwanted if against else self.facets
                target[name] = tuple(dict.fromkeys([*target.get(name, ()), *values]))
            if not against:
                kept.append(clause)
        return " ".join(kept)


def read_request(messages: list[dict], catalog, settings=None) -> Request:
    """The one way every surface understands a request: the chat (each turn), ``/v1/chat`` and
    ``/v1/chat/completions`` (their messages), ``recommend --query`` and ``/v1/recommend`` (one user
    message). ``messages``: OpenAI-style ``{"role", "content"}``; ``catalog``: a ChatCatalog.
    Rules today; ``settings`` is where a model-written reading is chosen."""
    request = Request.from_conversation(messages, catalog)
    if getattr(settings, "understanding", "rules") == "llm":  # rules stay the fast path and the fallback
        from agent.chat.understand import understand_with_settings

        request = understand_with_settings(request, messages, catalog, settings)
    return request


def _mentions_against(clause: str, values: tuple[str, ...]) -> bool:
    """'no horror', 'nothing scary', 'I hate musicals': the words before the facet say no."""
    lower = clause.lower()
    first = min((lower.find(v.lower()[:4]) for v in values if lower.find(v.lower()[:4]) >= 0), default=-1)
    before = lower[:first] if first >= 0 else lower
    return bool(_NO_FACET.search(before)) or bool(_NEGATIVE.search(clause))


def _add(target: list[str], ids: list[str]) -> None:
    for item_id in ids:
        if item_id not in target:
            target.append(item_id)


def _clause_at(text: str, position: int) -> str:
    """The clause (sentence part) of ``text`` around ``position``: what a reaction word refers to."""
    starts = [0] + [m.end() for m in _CLAUSE.finditer(text) if m.end() <= position]
    ends = [m.start() for m in _CLAUSE.finditer(text) if m.start() >= position] + [len(text)]
    return text[max(starts):min(ends)]


def named_titles(text: str, catalog) -> list[tuple[str, str]]:
    """(catalog id, the clause naming it) for every title in ``text``."""
    return _titles_and_rest(text, catalog)[0]


def _titles_and_rest(text: str, catalog) -> tuple[list[tuple[str, str]], str]:
    """The titles of ``text`` and the text without its "Title (Year)" runs: first every "Title
    (Year)" (the longest run of words before the year that is a title of that year, or one year
    off), then one more title written as one (ChatCatalog.find_title) per clause of what is left."""
    found, spans = [], []
    for match in _YEAR_TITLE.finditer(text):
        hit = _title_before(text[:match.start()], int(match.group(1)), catalog)
        if hit is not None:
            item_id, start = hit
            found.append((item_id, _clause_at(text, match.start())))
            spans.append((start, match.end()))
    rest = _cut(text, spans)
    for clause in _CLAUSE.split(rest):
        item_id = catalog.find_title(clause) if clause.strip() else None
        if item_id is not None and item_id not in {i for i, _ in found}:
            found.append((item_id, clause))
    return found, rest


def _title_before(prefix: str, year: int, catalog) -> tuple[str, int] | None:
    """The catalog id of the longest title ending right before a year, and where it starts."""
    words = list(_WORDS.finditer(prefix))[-MAX_TITLE_WORDS:]
    for n in range(len(words), 0, -1):
        start = words[-n].start()
        form = normalise(prefix[start:])
        ids = catalog.by_form.get(form, []) if form else []
        for tolerance in (0, 1):
            near = [i for i in ids if catalog.items[i].year is not None
                    and abs(int(catalog.items[i].year) - year) <= tolerance]
            if near:
                return catalog._pick(near), start
    return None


def _cut(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + " " + text[end:]
    return text
