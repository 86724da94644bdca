"""The grounding check: every content word of an explanation is supported by its evidence.

A content word is a word outside the titles the explanation names and outside a small allowed
vocabulary of connectives and generic recommender words (``prompts/explain_allowed_words.txt``,
kept as data) and the catalog's own words ("product", "bought": the prompt's start says them). It
is supported when its stem matches the stem of a word of the evidence (card fields, titles, the
collaborative link, the request) or a word the item's genres imply (a comedy is funny). Also rejected: tautologies (a content word said twice: "horror, horror", "humor with a
touch of humor") and empty praise (``prompts/explain_empty_praise.txt``) the evidence does not say.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable

import prompts
from agent.core.text import padded_words as _norm
from agent.core.text import words as _words

GENRE_IMPLIES = {"comedy": ("funny", "hilarious", "humorous", "humor"), "horror": ("scary",),
                 "animation": ("animated", "cartoon"), "children": ("kids", "family"), "romance": ("romantic", "love"),
                 "action": ("film",)}
"""Words a card's genre already supports (a comedy is funny): the request check and grounding share it."""
_SUFFIXES = (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", ""), ("ly", ""))


def _word_list(name: str) -> list[str]:
    lines = (prompts.TEMPLATE_DIR / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@functools.cache
def allowed_words() -> frozenset[str]:
    return frozenset(w.lower() for line in _word_list("explain_allowed_words.txt") for w in line.split())


@functools.cache
def empty_praise() -> tuple[str, ...]:
    return tuple(_norm(phrase) for phrase in _word_list("explain_empty_praise.txt"))


def stem(word: str) -> str:
    """A crude stem, enough to compare with evidence: comedies ~ comedy, animated ~ animation."""
    word = word.lower()
    for suffix, replacement in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)] + replacement
            break
    return word[:6]


def supported_stems(evidence_text: str) -> set[str]:
    said = _words(evidence_text)
    implied = [v for w in said for v in GENRE_IMPLIES.get(w, ())]
    return {stem(w) for w in [*said, *implied]}


def content_words(untitled: str, catalog_words: frozenset[str] = frozenset()) -> list[str]:
    """The words of ``untitled`` (an explanation with its titles cut out) that claim something:
    neither allowed words nor the catalog's own words (``catalog_words``, lower case)."""
    return [w for w in _words(untitled)
            if w.isalpha() and len(w) > 1 and w not in allowed_words() and w not in catalog_words]


def grounding_problems(untitled: str, evidence_text: str, catalog_words: frozenset[str] = frozenset()) -> list[str]:
    """Unsupported content words, tautologies and empty praise in ``untitled`` (see the module doc)."""
    said = content_words(untitled, catalog_words)
    problems = []
    unsupported = unsupported_words(untitled, evidence_text, catalog_words)
    if unsupported:
        problems.append(f"words no evidence supports: {', '.join(unsupported)}")
    repeated = [w for w, n in Counter(stem(w) for w in said).items() if n > 1]
    if repeated:
        problems.append(f"says a word twice: {', '.join(sorted(repeated))}")
    evidence = _norm(evidence_text)
    text = _norm(untitled)
    praise = [p.strip() for p in empty_praise() if p in text and p not in evidence]
    if praise:
        problems.append(f"empty praise: {', '.join(praise)}")
    return problems


def unsupported_words(untitled: str, evidence_text: str, catalog_words: frozenset[str] = frozenset()) -> list[str]:
    support = supported_stems(evidence_text)
    return _unique(w for w in content_words(untitled, catalog_words) if stem(w) not in support)


def _unique(words: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(words))


