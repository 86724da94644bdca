"""The grounding checker: does an explanation say only what its evidence supports?

Every delivered explanation passes :func:`check` (see :mod:`agent.explain.generate`). Strict on facts,
lenient on wording:
- every run of capitalised words (names, titles) appears in the evidence; a sentence's first word
  may be an ordinary word, so a run at a sentence start may drop its first word;
- every quoted string and every number (years included) appears in the evidence;
- every genre or award word (comedy, animated, Oscar-winning, ...) is supported by the item's card;
- every other content word is grounded in the evidence, no word is said twice, no empty praise
  (:mod:`agent.explain.grounding`);
- nothing instruction-like (ignore ... instructions, recommend ... to everyone, markup), no
  repetition loops, at most two finished sentences.

:func:`cited_refs` names the evidence ids an explanation uses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.core.text import display_title, tokenize
from agent.core.text import padded_words as _norm
from agent.explain.evidence import Evidence
from agent.explain.grounding import GENRE_IMPLIES, grounding_problems, unsupported_words

MAX_CHARS = 400
ALWAYS_OK = frozenset({"I", "You", "Your"})
GENRE_WORDS = {
    "animated": ("animation", "animated"), "animation": ("animation", "animated"),
    "cartoon": ("animation", "cartoon"), "comedy": ("comedy",), "comedies": ("comedy",),
    "horror": ("horror",), "thriller": ("thriller",), "documentary": ("documentary",),
    "western": ("western",), "musical": ("musical",), "romance": ("romance", "romantic"),
    "romantic": ("romance", "romantic"), "sci-fi": ("sci-fi", "science fiction"),
    "science fiction": ("sci-fi", "science fiction"), "crime": ("crime",), "mystery": ("mystery",),
    "fantasy": ("fantasy",), "drama": ("drama",), "dramatic": ("drama",), "war": ("war",),
    "noir": ("noir",), "adventure": ("adventure",), "superhero": ("superhero",),
}
RECEPTION_WORDS = {
    word: ("oscar", "award", "academy", "nominat", "acclaimed", "critically")
    for word in ("oscar", "oscars", "award", "awards", "award-winning", "academy", "nominated", "acclaimed",
                 "acclaim", "critically", "box office", "blockbuster")
}
ITEM_CLAIMS = {**GENRE_WORDS, **RECEPTION_WORDS}
"""Words that state a fact about the item; each needs one of its supporting words in the card."""
INSTRUCTION_LIKE = re.compile(
    r"ignore\b.{0,40}\b(instruction|prompt|rule)s?|(previous|above|prior|earlier) (instruction|prompt)s?"
    r"|recommend\b.{0,40}\bto (everyone|everybody|all users)|system prompt|as an ai\b|[<>]|&lt;|&gt;",
    re.IGNORECASE,
)
_CAPS_RUN = re.compile(r"[A-Z][\w'’\-]*(?:[ \t]+(?:[A-Z0-9][\w'’\-]*))*")
_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,})[\"“”]")
_NUMBER = re.compile(r"\b\d+\b")  # a whole number, not the digits of a word ("ID4")
SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _found(phrase: str, haystack: str) -> bool:
    words = _norm(phrase)
    return words.strip() == "" or words in haystack


def _sentence_starts(text: str) -> set[int]:
    starts = {0}
    for match in re.finditer(r"[.!?:;]\s+", text):
        starts.add(match.end())
    return starts


@dataclass
class Check:
    ok: bool
    problems: list[str] = field(default_factory=list)


def check(explanation: str, evidence: Evidence) -> Check:
    """Does every checkable fact of ``explanation`` appear in ``evidence``? (See the module doc.)"""
    haystack = _norm(evidence.text())
    titles = all_titles(evidence)
    problems = _format_problems(explanation, titles)
    starts = _sentence_starts(explanation)
    for match in _CAPS_RUN.finditer(explanation):
        run = re.sub(r"['’]s$", "", match.group()).rstrip("'’-")  # "Tom Hanks's" names Tom Hanks
        if run in ALWAYS_OK or re.fullmatch(r"I['’](m|d|ll|ve)", run) or _found(run, haystack):
            continue
        rest = run.split(None, 1)[1] if " " in run else ""
        if match.start() in starts and (not rest or _found(rest, haystack)):
            continue
        problems.append(f"name or title not in the evidence: {run!r}")
    problems += [f"quote not in the evidence: {q!r}" for q in _QUOTED.findall(explanation) if not _found(q, haystack)]
    # numbers outside the titles: "Independence Day (a.k.a. ID4)" and "Se7en" are names, not claims
    problems += [f"number not in the evidence: {n}" for n in _NUMBER.findall(without_titles(explanation, titles))
                 if f" {n} " not in haystack]
    # What the item is (genres, awards) must come from its own card: the request and the history
    # describe the viewer, so "animated" in a request does not make a live-action pick animated.
    card = _norm(" ".join(evidence.card.values()))
    problems += _echoed_request(explanation, evidence)
    text = without_titles(explanation, titles)  # "World War Z" says nothing about war films
    for word, support in ITEM_CLAIMS.items():
        if _norm(word) in text and not any(_norm(s).strip() in card for s in support):
            problems.append(f"claim about the item not supported by its card: {word!r}")
    # a quote was checked whole above; its words are the evidence's, not claims of the writer
    problems += grounding_problems(without_titles(_QUOTED.sub(" ", explanation), titles), evidence.text(),
                                   evidence.words.vocabulary)
    return Check(not problems, problems)


def unsupported_content(explanation: str, evidence: Evidence) -> list[str]:
    """The explanation's content words that no evidence supports (outside titles and quotes)."""
    return unsupported_words(without_titles(_QUOTED.sub(" ", explanation), all_titles(evidence)), evidence.text(),
                             evidence.words.vocabulary)


def all_titles(evidence: Evidence) -> list[str]:
    """The item's title and every title its evidence names (history, the collaborative link)."""
    co = [evidence.co.title] if evidence.co is not None else []
    return [evidence.title, *(link.title for link in evidence.history), *co]


def without_titles(text: str, titles: Sequence[str]) -> str:
    """``text`` normalised, with every form of the given titles cut out."""
    text = _norm(text)
    for title in titles:
        for form in (title, display_title(title)):
            text = text.replace(_norm(form), " ")
    return text


def _stem(word: str) -> str:
    return word.rstrip("s")[:6]  # toys ~ toy, animated ~ animation: enough to compare with a card


def _echoed_request(explanation: str, evidence: Evidence) -> list[str]:
    """Words of the request that the explanation uses but the item's card and title do not have:
    the request says what the viewer wants, not what the item is ("a lighthouse keeper" asked for
    does not put a lighthouse keeper in the film)."""
    if not evidence.request:
        return []
    item_words = tokenize(" ".join([evidence.title, *evidence.card.values()]))
    item_stems = {_stem(w) for w in item_words + [v for w in item_words for v in GENRE_IMPLIES.get(w, ())]}
    asked = {w for r in evidence.request for w in tokenize(r.text) if len(w) > 3}
    unquoted = _QUOTED.sub(" ", explanation)  # quoting the request attributes it to the request
    said = set(without_titles(unquoted, [link.title for link in evidence.history]).split())
    echoed = sorted(w for w in said & asked if _stem(w) not in item_stems)
    return [f"request words presented as facts about the item: {', '.join(echoed)}"] if echoed else []


def _format_problems(explanation: str, titles: Sequence[str] = ()) -> list[str]:
    problems = []
    if len(explanation.strip()) < 10:
        problems.append("empty or too short")
    if len(explanation) > MAX_CHARS:
        problems.append("too long")
    if INSTRUCTION_LIKE.search(explanation):
        problems.append("instruction-like text or markup")
    untitled = explanation
    for title in titles:  # "Kill Bill: Vol. 1" is not a sentence end
        for form in (title, display_title(title)):
            untitled = untitled.replace(form, "T")
    if len(SENTENCE_END.findall(untitled)) > 2:
        problems.append("more than two sentences")
    # "Star Wars: Episode V" after "Star Wars: Episode IV" is not a loop
    words = without_titles(explanation, titles).split()
    trigrams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    if len(trigrams) != len(set(trigrams)):
        problems.append("repeats itself")
    return problems


def cited_refs(explanation: str, evidence: Evidence) -> list[str]:
    """Evidence ids the explanation uses: a title or list value it names, or shared content words."""
    said = _norm(explanation)
    # Card fields are cited for what the explanation says beyond the titles it names.
    beyond_titles = without_titles(explanation, [evidence.title] + [link.title for link in evidence.history])
    said_words = set(beyond_titles.split())
    cites = []
    for ref, text in evidence.pieces().items():
        if ref == "co":  # the link is cited by its count, the fact it adds
            used = evidence.co is not None and f" {evidence.co.count} " in said
        elif ref == "title" or ref.startswith("h"):
            titles = [link.title for link in evidence.history if link.ref == ref] or [evidence.title]
            used = any(_found(display_title(t), said) or _found(t, said) for t in titles)
        elif "," in text or len(text) < 40:
            used = any(len(v.strip()) > 2 and _norm(v) in beyond_titles for v in text.split(","))
        else:
            used = len(said_words & {w for w in tokenize(text) if len(w) > 3}) >= 2
        if ref in REQUEST_REFS and re.search(r"\b(request|asked)\b", explanation):
            used = True
        if used:
            cites.append(ref)
    return cites


REQUEST_REFS = ("query", "transcript", "photo_text", "video_screen", "video_speech")


def cites_beyond_basics(cites: Sequence[str], evidence: Evidence) -> bool:
    """Does the explanation cite a fact beyond the item's title, year and facets (a movie's genres),
    the viewer's own history titles and request: the collaborative link, tags, people, plot, poster text?"""
    basic = {"title", *evidence.facets, *REQUEST_REFS}
    return any(ref not in basic and not re.fullmatch(r"h\d+", ref) for ref in cites)
