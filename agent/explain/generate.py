"""Grounded explanations: generated from evidence, checked against it, repaired or replaced.

The three stages: :mod:`agent.explain.evidence` gathers the facts, this module writes the sentences,
:mod:`agent.explain.check` verifies them. Every explanation goes through :func:`check`. The LLM (the
small instruct model, base weights) completes a sentence whose start is fixed by the prompt
("Because you watched <history title>, you may enjoy <title>, a ..."): a tiny model writes far
better inside a narrow format. All k items are generated in one batched call. An explanation that
fails the check is regenerated once, in one batch for all failures, with a stricter prompt (fewer
facts, a narrower instruction); one that fails again is replaced by a template sentence built from
the evidence alone. So every delivered explanation passes the check, and ``status`` says which of
the three produced it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import prompts
from agent.core.text import display_title
from agent.explain.check import INSTRUCTION_LIKE, SENTENCE_END, check, cited_refs
from agent.explain.evidence import Evidence
from agent.ingest.cards import MEDIA_LABELS, slug
from agent.rerank.prompt import fence_text

STATUSES = ("generated", "repaired", "template")
MAX_NEW_TOKENS = 40
CONSTRAINED_MAX_NEW_TOKENS = 20
"""A constrained row seldom stops by itself before the limit, and the batch waits for its longest row."""
FACT_CHARS = 160
MAX_TAGS = 5
MAX_CAST = 3


def complete(prefix: str, continuation: str) -> str:
    """The pre-filled start plus the model's words, cut to their last finished sentence (generation
    stops mid-sentence at the token limit or at a stop string; a continuation without a sentence end
    gets a full stop). Only the model's words are cut: a title in the start may hold a full stop
    ("Kill Bill: Vol. 1"). No words at all give "", which fails the check."""
    words = " ".join(continuation.split())
    ends = list(SENTENCE_END.finditer(words))
    words = words[: ends[-1].end()] if ends else _cut_clause(words) + "."
    if not any(c.isalnum() for c in words):
        return ""
    return prefix + (" " if words[0].isalnum() else "") + words


def _cut_clause(words: str) -> str:
    """Words cut at the token limit, back to one a clause can end on ("in which a woman is asked
    to" -> "in which a woman is asked")."""
    from agent.explain.constrain import NO_END

    kept = words.rstrip(",;: ").split(" ")
    while kept and kept[-1].lower().strip(",;:") in NO_END:
        kept.pop()
    return " ".join(kept).rstrip(",;: ")


# --- prompts --------------------------------------------------------------------------------------


def _first(values: str, n: int) -> str:
    return ", ".join([v.strip() for v in values.split(",") if v.strip()][:n])


def _safe(text: str, max_chars: int = FACT_CHARS) -> str:
    """Fenced catalog text; instruction-like text is dropped rather than shown to the model."""
    return "" if INSTRUCTION_LIKE.search(text) else fence_text(text, max_chars)


# Card fields that are not facts for the prompt: the writer adds names to check, not reasons, and
# media text (poster OCR, captions, transcripts) is noisy.
NOT_PROMPTED = frozenset({"title", "tags", "director", "cast", "writer", *(slug(label) for label in MEDIA_LABELS.values())})


def _label(key: str) -> str:
    return key.replace("_", " ").capitalize()


def prompt_facts(evidence: Evidence, strict: bool) -> list[tuple[str, str]]:
    """The card fields the prompt shows, fenced: the item's facets (a movie's genres) and tags;
    unless strict (the retry), also the director, the first of the cast and the catalog's text
    fields (a movie's plot, a product's description)."""
    card = evidence.card
    wanted = [(_label(key), card[key]) for key in evidence.facets]
    wanted.append(("Tags", _first(card.get("tags", ""), MAX_TAGS)))
    if not strict:
        wanted += [("Director", card.get("director", "")), ("Cast", _first(card.get("cast", ""), MAX_CAST))]
        wanted += [(_label(key), text) for key, text in card.items()
                   if key not in NOT_PROMPTED and key not in evidence.facets]
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


def kind_phrase(evidence: Evidence) -> str:
    """What the item is, in words from its card: a movie's genres ("an animated comedy"), else its
    first facet value ("a Running Shoes pick"), else "a film"."""
    first = next((evidence.card[key].split(",")[0].strip() for key in evidence.facets if key != "genres"), "")
    if "genres" in evidence.card or not first:
        return genre_phrase(evidence.card.get("genres", ""))
    return ("an " if first[0].lower() in "aeiou" else "a ") + f"{first} pick"


def facets_text(evidence: Evidence) -> str:
    """The item's facet values as one evidence string ("Adventure, Animation")."""
    return ", ".join(evidence.card[key] for key in evidence.facets)


def _prompt_vars(evidence: Evidence, strict: bool) -> dict:
    matched = evidence.matched_request
    history = display_title(evidence.history[0].title) if evidence.history else ""
    return {
        "kind": kind_phrase(evidence),
        "year": evidence.year or "",
        "title": _safe(display_title(evidence.title), 200),
        "history": _safe(history, 200),
        "request": _safe(matched.text, 200) if matched else "",
        "co": evidence.co.count if evidence.co else "",
        "co_title": _safe(display_title(evidence.co.title), 200) if evidence.co else "",
        "facts": prompt_facts(evidence, strict),
        "strict": strict,
        "lead": "that" if strict else lead(evidence),
        "words": evidence.words,
    }


LEADS = (("plot", "in which"), ("tags", "about"), ("director", "directed by"), ("cast", "starring"))
"""The words that end the answer's start, by the richest fact the card has: they point the model at
that fact ("... a noir thriller in which" retells the plot), where a bare "that" invites praise."""


def lead(evidence: Evidence) -> str:
    return next((words for key, words in LEADS if evidence.card.get(key)), "that")


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
        request=variables["request"], facets=_safe(facets_text(evidence)),
        co=variables["co"], co_title=variables["co_title"],
        tags=_safe(_first(evidence.card.get("tags", ""), 2)), words=evidence.words,
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
            from agent.provision.models import llm_for

            self._llm = llm_for(self._settings(), "explain")
        return self._llm

    def _generate(self, evidences: Sequence[Evidence], strict: bool) -> list[str]:
        pairs = [explanation_prompt(self.llm, e, strict) for e in evidences]
        constraint = self._constraint(evidences, [prefix for _, prefix in pairs])
        limit = CONSTRAINED_MAX_NEW_TOKENS if constraint else MAX_NEW_TOKENS
        outs = self.llm.generate([p for p, _ in pairs], max_new_tokens=limit, stop=(". ", "\n"),
                                 **({"allowed_tokens": constraint} if constraint else {}))
        return [complete(prefix, out) for (_, prefix), out in zip(pairs, outs, strict=True)]

    def _constraint(self, evidences: Sequence[Evidence], prefixes: Sequence[str]):
        """The word constraint (agent.explain.constrain) when the setting asks for it and the LLM
        takes one (a local model; a remote server or a stand-in without ``allowed_tokens`` writes freely)."""
        import inspect

        if not self._settings().explain_constrained or not hasattr(self.llm, "tokenizer"):
            return None
        if "allowed_tokens" not in inspect.signature(self.llm.generate).parameters:
            return None
        from agent.explain.constrain import batch_constraint

        return batch_constraint(self.llm.tokenizer, evidences, prefixes)

    def _settings(self):
        from agent.core.config import load_settings

        return self.settings or load_settings()

    def explain(self, evidences: Sequence[Evidence]) -> list[Explanation]:
        """One explanation per evidence, in order; each passes :func:`check`."""
        results: list[Explanation | None] = [None] * len(evidences)
        pending, problems = list(range(len(evidences))), {i: [] for i in range(len(evidences))}
        for status, strict in self._passes():
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

    def _passes(self) -> tuple[tuple[str, bool], ...]:
        """Generation passes: the first try, then (setting ``explain_repair``) a stricter retry."""
        return (("generated", False), ("repaired", True)) if self._settings().explain_repair else (("generated", False),)

    @staticmethod
    def _template(evidence: Evidence, problems: list[str]) -> Explanation:
        text = template_explanation(evidence)
        if not check(text, evidence).ok:  # e.g. a title that itself reads like an instruction
            text = "Recommended for your request." if evidence.request else "Recommended from your viewing history."
        return Explanation(text, "template", cited_refs(text, evidence), problems)
