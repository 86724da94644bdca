"""Slot extraction: the facts a chat message states (ids, titles, ordinals, facet values such as
genres or brands, years, moods, files).

A 135M model cannot be trusted to copy an id or a year into JSON, so arguments come from rules that
are cheap, testable and explainable; the LLM's part is choosing the tool. Every value extracted
here is still validated against the chosen tool's type hints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MOODS = {
    "lighter": re.compile(r"\blight(er|-hearted|hearted)?\b|\bfunnier\b|\bless (dark|serious|heavy|violent|sad|scary)\b|"
                          r"\bmore (fun|upbeat|cheerful)\b|\bcheer(ful| me up)\b|\bupbeat\b|\bfeel[- ]good\b", re.IGNORECASE),
    "darker": re.compile(r"\bdarker\b|\bmore (serious|intense|disturbing)\b|\bscarier\b|\bgrittier\b|\bless (funny|silly)\b", re.IGNORECASE),
}
MOOD_QUERY = {"lighter": "light-hearted feel-good comedy", "darker": "dark gritty intense drama"}
MOOD_AVOID = {  # values of the facet "genres" (MovieLens); a catalog without them avoids nothing
    "lighter": ("Horror", "Thriller", "War", "Crime", "Film-Noir"),
    "darker": ("Children", "Animation", "Musical"),
}

ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3,
            "fifth": 4, "5th": 4, "sixth": 5, "6th": 5, "seventh": 6, "7th": 6, "eighth": 7, "8th": 7,
            "ninth": 8, "9th": 8, "tenth": 9, "10th": 9, "last": -1}
_ORDINAL = re.compile(rf"\b(?:the )?({'|'.join(ORDINALS)})(?: one| movie| film| pick)?\b|(?:#|\bnumber |\bno\. ?)(\d{{1,2}})\b", re.IGNORECASE)
_BACK_REF = re.compile(r"\b(that|this) (one|movie|film)\b|\bthat one\b|\b(about|of) (it|that)\b|^\s*(it|that)\b", re.IGNORECASE)
_NEGATE = re.compile(r"\bnot (that|this|the \w+)( one)?\b|\b(already|i'?ve) (seen|watched)\b|\bseen (it|that|this)\b|"
                     r"\bno,? not\b|\bskip (that|this|the \w+)\b|\bsomething else\b|\bdrop (that|this|the \w+)\b", re.IGNORECASE)
_USER = re.compile(r"\buser(?:\s*(?:id|#|number|no\.?))?\s*[:#]?\s*(\d{1,7})\b", re.IGNORECASE)
_ITEM_ID = re.compile(r"\b(?:item\s*(?:id\s*)?[:#]?|(?:movie|film)\s*(?:id\s*)?[:#]|id\s*[:#]?)\s*(\d{1,7})\b", re.IGNORECASE)
_PATH = re.compile(r"(?:^|\s)([~./\w-]*[\w-]+\.(wav|mp3|flac|ogg|m4a|opus|webm|jpe?g|png|webp|gif|bmp|tiff?))\b", re.IGNORECASE)

_YEAR = r"(1[89]\d\d|20\d\d)"
_DECADE = re.compile(r"\b(?:the )?(?:(1[89]|20)(\d)0|'?(\d)0)'?s\b", re.IGNORECASE)
_YEAR_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(rf"\bbetween {_YEAR} and {_YEAR}\b", re.IGNORECASE), "between"),
    (re.compile(rf"\b{_YEAR}\s*(?:-|to|until)\s*{_YEAR}\b", re.IGNORECASE), "between"),
    (re.compile(rf"\b(?:after|newer than|later than|post) {_YEAR}\b", re.IGNORECASE), "after"),
    (re.compile(rf"\b(?:since|from) {_YEAR}(?! ?s\b)(?: on(?:wards?)?)?\b|\b{_YEAR} or (?:later|newer|after)\b", re.IGNORECASE), "since"),
    (re.compile(rf"\b(?:before|older than|earlier than|pre) {_YEAR}\b", re.IGNORECASE), "before"),
    (re.compile(rf"\b(?:until|up to|through) {_YEAR}\b|\b{_YEAR} or (?:earlier|older|before)\b", re.IGNORECASE), "until"),
    (re.compile(rf"\b(?:in|from|of) {_YEAR}\b", re.IGNORECASE), "in"),
]
_RECENT = re.compile(r"\b(recent|newer|new releases?|latest)\b", re.IGNORECASE)
RECENT_YEAR = 2010
"""'recent' in a catalog that ends in 2018 means the last decade or so."""

_FILLER = re.compile(
    r"\b(please|thanks?|thank you|ok(ay)?|hmm+|yes|no|nope|also|just|only|maybe|now|then|instead|rather|"
    r"something|anything|one|ones|movies?|films?|stuff|again|but|and|or|a|an|the|me|i|it|that|this|some|"
    r"show|give|more|less|like|about|with|to|of|for|want|would|could|can|you|do|have|any|other|else|"
    r"let'?s|see|how|what|which|tell|is|are|was|on|in|from|after|before|since|between|until|up|older|newer|"
    r"not|seen|watched|already|list|make|it'?s|i'?m|my|these|those|pick|picks|next|years?|year|"
    r"recommend|suggest|picture|photo|image)\b",
    re.IGNORECASE,
)


@dataclass
class Slots:
    """What one message states; None/empty where it says nothing."""

    text: str
    user: str | None = None
    item_id: str | None = None
    """An item named by id or by title."""
    ordinal: int | None = None
    """0-based position in the last answer ("the second one" -> 1; "the last one" -> -1)."""
    refers_back: bool = False
    negate: bool = False
    facets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Facet values the message names (the catalog's vocabulary): {"genres": ("Comedy",)}."""
    year_min: int | None = None
    year_max: int | None = None
    mood: str | None = None
    path: str | None = None
    content_words: list[str] = field(default_factory=list)
    """Words left after removing everything above and filler: a new request has some."""

    @property
    def search_text(self) -> str:
        """The request as search words: the message minus chat filler, years and moods, which only
        add noise to word matching ("anything with dinosaurs?" -> "dinosaurs")."""
        return " ".join(self.content_words) or self.text

    @property
    def has_years(self) -> bool:
        return self.year_min is not None or self.year_max is not None


def extract_years(text: str) -> tuple[int | None, int | None]:
    """(year_min, year_max) stated in the text; 'after 2000' excludes 2000, 'since 2000' keeps it."""
    for pattern, kind in _YEAR_RULES:
        m = pattern.search(text)
        if not m:
            continue
        years = [int(y) for y in m.groups() if y]
        if kind == "between":
            return min(years), max(years)
        year = years[0]
        return {"after": (year + 1, None), "since": (year, None), "before": (None, year - 1),
                "until": (None, year), "in": (year, year)}[kind]
    decades = [_decade_start(m) for m in _DECADE.finditer(text)]
    if decades:  # "the 70s or 80s" spans both
        return min(decades), max(decades) + 9
    if _RECENT.search(text):
        return RECENT_YEAR, None
    return None, None


def _decade_start(m: re.Match) -> int:
    if m.group(1):
        return int(m.group(1) + m.group(2) + "0")
    digit = int(m.group(3))
    return (1900 if digit >= 2 else 2000) + 10 * digit


def extract_ordinal(text: str) -> int | None:
    m = _ORDINAL.search(text)
    if not m:
        return None
    if m.group(1):
        return ORDINALS[m.group(1).lower()]
    number = int(m.group(2))
    return number - 1 if number >= 1 else None


def extract_slots(message: str, catalog=None, *, paths: bool = False) -> Slots:
    """Every slot of one message; ``catalog`` (a ChatCatalog) resolves titles and facet values named in it.

    ``paths``: read a file name in the text as the file slot. Only the local CLI REPL turns it on:
    a server must never open a file because a remote message named it, so there a path is words."""
    text = " ".join(message.split())
    slots = Slots(text=text)
    if m := _USER.search(text):
        slots.user = m.group(1)
    if m := _ITEM_ID.search(text):
        slots.item_id = m.group(1)
    if paths and (m := _PATH.search(text)):
        slots.path = m.group(1)
    slots.ordinal = extract_ordinal(text)
    slots.refers_back = bool(_BACK_REF.search(text))
    slots.negate = bool(_NEGATE.search(text))
    slots.year_min, slots.year_max = extract_years(text)
    vocabulary = getattr(catalog, "vocabulary", None)
    slots.facets = vocabulary.extract(text) if vocabulary is not None else {}
    slots.mood = next((name for name, pattern in MOODS.items() if pattern.search(text)), None)
    if slots.item_id is None and catalog is not None:
        slots.item_id = catalog.find_title(text)
    words = getattr(catalog, "words", None)
    nouns = set(f"{words.noun} {words.nouns}".lower().split()) if words is not None else set()
    slots.content_words = _content_words(text, slots, nouns)
    return slots


def _content_words(text: str, slots: Slots, nouns: set[str] = frozenset()) -> list[str]:
    """The words left that say what is wanted; ``nouns``: what the catalog calls its items ("products"
    says no more than "movies", which the filler words already drop)."""
    rest = _PATH.sub(" ", text) if slots.path else text
    for pattern in (_USER, _ITEM_ID, _ORDINAL, _DECADE, _RECENT, *(p for p, _ in _YEAR_RULES), *MOODS.values()):
        rest = pattern.sub(" ", rest)
    rest = re.sub(r"\b\d+\b", " ", rest)
    rest = _FILLER.sub(" ", rest)
    return [w for w in re.findall(r"[a-z][a-z'-]+", rest.lower()) if w not in nouns]
