"""Grounded explanations: generated from evidence, checked against it, repaired or replaced.

Every explanation goes through :func:`check`. The LLM (the small instruct model, base weights)
completes a sentence whose start is fixed by the prompt ("Because you watched <history title>, you
may enjoy <title>, a ..."): a tiny model writes far better inside a narrow format. All k items are
generated in one batched call. An explanation that fails the check is regenerated once, in one
batch for all failures, with a stricter prompt (fewer facts, a narrower instruction); one that
fails again is replaced by a template sentence built from the evidence alone. So every delivered
explanation passes the check, and ``status`` says which of the three produced it.

What the checker verifies (strict on facts, lenient on wording):
- every run of capitalised words (names, titles) appears in the evidence; a sentence's first word
  may be an ordinary word, so a run at a sentence start may drop its first word;
- every quoted string and every number (years included) appears in the evidence;
- every genre or award word (comedy, animated, Oscar-winning, ...) is supported by the item's card;
- nothing instruction-like (ignore ... instructions, recommend ... to everyone, markup), no
  repetition loops, at most two finished sentences.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import prompts
from agent.retrieval.bm25 import tokenize
from agent.explain.evidence import Evidence, display_title
from agent.rerank.reranker import fence_text

STATUSES = ("generated", "repaired", "template")
MAX_NEW_TOKENS = 40
FACT_CHARS = 160
MAX_TAGS = 5
MAX_CAST = 3
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
GENRE_IMPLIES = {"comedy": ("funny", "hilarious", "humorous", "humor"), "horror": ("scary",),
                 "animation": ("animated", "cartoon"), "children": ("kids", "family")}
"""Request words a card's genre already supports (a comedy is funny)."""
"""Words that state a fact about the item; each needs one of its supporting words in the card."""
INSTRUCTION_LIKE = re.compile(
    r"ignore\b.{0,40}\b(instruction|prompt|rule)s?|(previous|above|prior|earlier) (instruction|prompt)s?"
    r"|recommend\b.{0,40}\bto (everyone|everybody|all users)|system prompt|as an ai\b|[<>]|&lt;|&gt;",
    re.IGNORECASE,
)
_CAPS_RUN = re.compile(r"[A-Z][\w'’\-]*(?:[ \t]+(?:[A-Z0-9][\w'’\-]*))*")
_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,})[\"“”]")
_NUMBER = re.compile(r"\d+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def _norm(text: str) -> str:
    """Lower-case words without accents, separated by single spaces, padded for whole-word search
    (any other character separates words: "WALL·E" -> " wall e ")."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))
    return " " + " ".join(re.findall(r"[a-z0-9]+", folded)) + " "


def _found(phrase: str, haystack: str) -> bool:
    words = _norm(phrase)
    return words.strip() == "" or words in haystack


def _sentence_starts(text: str) -> set[int]:
    starts = {0}
    for match in re.finditer(r"[.!?:;]\s+", text):
        starts.add(match.end())
    return starts


# --- the checker ----------------------------------------------------------------------------------


@dataclass
class Check:
    ok: bool
    problems: list[str] = field(default_factory=list)


def check(explanation: str, evidence: Evidence) -> Check:
    """Does every checkable fact of ``explanation`` appear in ``evidence``? (See the module doc.)"""
    haystack = _norm(evidence.text())
    titles = [evidence.title] + [link.title for link in evidence.history]
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
    problems += [f"number not in the evidence: {n}" for n in _NUMBER.findall(explanation) if f" {n} " not in haystack]
    # What the item is (genres, awards) must come from its own card: the request and the history
    # describe the viewer, so "animated" in a request does not make a live-action pick animated.
    card = _norm(" ".join(evidence.card.values()))
    problems += _echoed_request(explanation, evidence)
    text = _without_titles(explanation, titles)  # "World War Z" says nothing about war films
    for word, support in ITEM_CLAIMS.items():
        if _norm(word) in text and not any(_norm(s).strip() in card for s in support):
            problems.append(f"claim about the item not supported by its card: {word!r}")
    return Check(not problems, problems)


def _without_titles(text: str, titles: Sequence[str]) -> str:
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
    said = set(_without_titles(unquoted, [link.title for link in evidence.history]).split())
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
    if len(_SENTENCE_END.findall(untitled)) > 2:
        problems.append("more than two sentences")
    # "Star Wars: Episode V" after "Star Wars: Episode IV" is not a loop
    words = _without_titles(explanation, titles).split()
    trigrams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
    if len(trigrams) != len(set(trigrams)):
        problems.append("repeats itself")
    return problems


def complete(prefix: str, continuation: str) -> str:
    """The pre-filled start plus the model's words, cut to their last finished sentence (generation
    stops mid-sentence at the token limit or at a stop string; a continuation without a sentence end
    gets a full stop). Only the model's words are cut: a title in the start may hold a full stop
    ("Kill Bill: Vol. 1"). No words at all give "", which fails the check."""
    words = " ".join(continuation.split())
    ends = list(_SENTENCE_END.finditer(words))
    words = words[: ends[-1].end()] if ends else words.rstrip(",;: ") + "."
    if not any(c.isalnum() for c in words):
        return ""
    return prefix + (" " if words[0].isalnum() else "") + words


def cited_refs(explanation: str, evidence: Evidence) -> list[str]:
    """Evidence ids the explanation uses: a title or list value it names, or shared content words."""
    said = _norm(explanation)
    # Card fields are cited for what the explanation says beyond the titles it names.
    beyond_titles = _without_titles(explanation, [evidence.title] + [link.title for link in evidence.history])
    said_words = set(beyond_titles.split())
    cites = []
    for ref, text in evidence.pieces().items():
        if ref == "title" or ref.startswith("h"):
            titles = [link.title for link in evidence.history if link.ref == ref] or [evidence.title]
            used = any(_found(display_title(t), said) or _found(t, said) for t in titles)
        elif "," in text or len(text) < 40:
            used = any(len(v.strip()) > 2 and _norm(v) in beyond_titles for v in text.split(","))
        else:
            used = len(said_words & {w for w in tokenize(text) if len(w) > 3}) >= 2
        if ref in ("query", "transcript", "photo_text") and re.search(r"\b(request|asked)\b", explanation):
            used = True
        if used:
            cites.append(ref)
    return cites


# --- prompts --------------------------------------------------------------------------------------


def _first(values: str, n: int) -> str:
    return ", ".join([v.strip() for v in values.split(",") if v.strip()][:n])


def _safe(text: str, max_chars: int = FACT_CHARS) -> str:
    """Fenced catalog text; instruction-like text is dropped rather than shown to the model."""
    return "" if INSTRUCTION_LIKE.search(text) else fence_text(text, max_chars)


def prompt_facts(evidence: Evidence, strict: bool) -> list[tuple[str, str]]:
    """The card fields the prompt shows, fenced; the retry shows only genres and tags."""
    card = evidence.card
    wanted = [("Genres", card.get("genres", "")), ("Tags", _first(card.get("tags", ""), MAX_TAGS))]
    if not strict:
        wanted += [("Director", card.get("director", "")), ("Cast", _first(card.get("cast", ""), MAX_CAST)),
                   ("Plot", card.get("plot", ""))]
    return [(label, _safe(text)) for label, text in wanted if text and _safe(text)]


GENRE_ADJECTIVES = {"Animation": "animated", "Children": "family", "Romance": "romantic", "Sci-Fi": "sci-fi",
                    "Fantasy": "fantasy", "Horror": "horror", "Musical": "musical", "War": "war", "Western": "western",
                    "Film-Noir": "noir", "Mystery": "mystery", "Crime": "crime"}
GENRE_NOUNS = {"Comedy": "comedy", "Drama": "drama", "Thriller": "thriller", "Documentary": "documentary",
               "Adventure": "adventure", "Action": "action film"}


def genre_phrase(genres: str) -> str:
    """"Adventure, Animation, Children, Comedy" -> "an animated comedy": the kind of film, in words
    taken from the card, so the model need not (and cannot wrongly) name it."""
    names = [g.strip() for g in genres.split(",")]
    adjective = next((GENRE_ADJECTIVES[g] for g in GENRE_ADJECTIVES if g in names), "")
    noun = next((GENRE_NOUNS[g] for g in GENRE_NOUNS if g in names), "film")
    phrase = f"{adjective} {noun}".strip() if adjective != noun else noun
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _prompt_vars(evidence: Evidence, strict: bool) -> dict:
    matched = evidence.matched_request
    history = display_title(evidence.history[0].title) if evidence.history else ""
    return {
        "kind": genre_phrase(evidence.card.get("genres", "")),
        "year": evidence.year or "",
        "title": _safe(display_title(evidence.title), 200),
        "history": _safe(history, 200),
        "request": _safe(matched.text, 200) if matched else "",
        "facts": prompt_facts(evidence, strict),
        "strict": strict,
    }


def explanation_prompt(llm, evidence: Evidence, strict: bool = False) -> tuple[str, str]:
    """(chat prompt ending in the pre-filled answer start, that answer start)."""
    variables = _prompt_vars(evidence, strict)
    system = prompts.render("explain.j2", part="system", **variables)
    user = prompts.render("explain.j2", part="user", **variables)
    prefix = prompts.render("explain.j2", part="prefix", **variables)
    return llm.chat(system, user) + prefix, prefix


def template_explanation(evidence: Evidence) -> str:
    """A sentence made of evidence strings only; instruction-like strings are left out."""
    variables = _prompt_vars(evidence, strict=True)
    text = prompts.render(
        "explain_template.j2", title=variables["title"] or "This pick", history=variables["history"],
        request=variables["request"], genres=_safe(evidence.card.get("genres", "")),
        tags=_safe(_first(evidence.card.get("tags", ""), 2)),
    )
    return " ".join(text.split())


# --- generation -----------------------------------------------------------------------------------


@dataclass
class Explanation:
    text: str
    status: str
    cites: list[str]
    problems: list[str] = field(default_factory=list)  # what failed before the final text
    passed: bool = True  # the delivered text, checked once more

    def to_json(self) -> dict:
        return {"explanation": self.text, "explanation_status": self.status, "cites": self.cites,
                "explanation_check": {"passed": self.passed, "earlier_problems": self.problems}}


class Explainer:
    """Explains a batch of recommendations with the shared LLM (agent.llm.load_llm)."""

    def __init__(self, settings=None, llm=None):
        self.settings = settings
        self._llm = llm
        self.last_seconds: dict[str, float] = {}

    @property
    def llm(self):
        if self._llm is None:
            from agent.llm import load_llm

            self._llm = load_llm(self.settings)
        return self._llm

    def _generate(self, evidences: Sequence[Evidence], strict: bool) -> list[str]:
        pairs = [explanation_prompt(self.llm, e, strict) for e in evidences]
        outs = self.llm.generate([p for p, _ in pairs], max_new_tokens=MAX_NEW_TOKENS, stop=(". ", "\n"))
        return [complete(prefix, out) for (_, prefix), out in zip(pairs, outs, strict=True)]

    def explain(self, evidences: Sequence[Evidence]) -> list[Explanation]:
        """One explanation per evidence, in order; each passes :func:`check`."""
        results: list[Explanation | None] = [None] * len(evidences)
        pending, problems = list(range(len(evidences))), {i: [] for i in range(len(evidences))}
        for status, strict in (("generated", False), ("repaired", True)):
            if not pending:
                break
            start = time.perf_counter()
            texts = self._generate([evidences[i] for i in pending], strict)
            self.last_seconds[status] = time.perf_counter() - start
            still = []
            for i, text in zip(pending, texts, strict=True):
                verdict = check(text, evidences[i])
                if verdict.ok:
                    results[i] = Explanation(text, status, cited_refs(text, evidences[i]), problems[i])
                else:
                    problems[i] += verdict.problems
                    still.append(i)
            pending = still
        for i in pending:
            results[i] = self._template(evidences[i], problems[i])
        for result, evidence in zip(results, evidences, strict=True):
            result.passed = check(result.text, evidence).ok
        return results  # type: ignore[return-value]

    @staticmethod
    def _template(evidence: Evidence, problems: list[str]) -> Explanation:
        text = template_explanation(evidence)
        if not check(text, evidence).ok:  # e.g. a title that itself reads like an instruction
            text = "Recommended for your request." if evidence.request else "Recommended from your viewing history."
        return Explanation(text, "template", cited_refs(text, evidence), problems)
