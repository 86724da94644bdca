"""The facts an explanation may use about one recommended item, each with an id it can cite.

Three kinds of evidence, all taken from what recsage already has (never from the LLM):

- ``co``: the collaborative link, how many people who interacted with one of the user's items also
  interacted with the pick (agent.explain.cooccur), a fact every item with interactions has;
- ``history``: the user's watched items most similar to the item by content vector (the MiniLM
  card vectors of the Chroma ``items`` collection), with the cosine similarity;
- ``card``: the item's context card, split into its labelled fields (facets such as genres or
  category and brand, tags, the catalog's text fields such as a plot or a description, people,
  poster text, ...), exactly as ingest wrote it;
- ``request``: each part of the request (typed query, voice-note transcript, photo text) with its
  MiniLM similarity to the item's vector and the words it shares with the card; the best part is
  the one the item ``matched``.

Ids are short and readable (``h1``, ``genres``, ``query``) so a cited id means something to a
person reading the JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from agent.core.project import MOVIE_WORDS, CatalogWords
from agent.core.text import display_title, tokenize
from agent.ingest.cards import facet_label, parse_card, slug

HISTORY_PIECES = 2
"""History items shown per recommendation: the strongest link, plus one for context."""


@dataclass
class HistoryLink:
    ref: str
    id: str
    title: str
    year: int | None
    similarity: float


@dataclass
class CoLink:
    """``count`` people who interacted with the history item ``title`` also interacted with the pick."""

    id: str
    title: str
    year: int | None
    count: int


@dataclass
class RequestMatch:
    ref: str  # the request part: query, transcript or photo_text
    text: str
    similarity: float
    matched_words: list[str]


@dataclass
class Evidence:
    """Everything an explanation of one item may say, by citable id."""

    item_id: str
    title: str
    year: int | None
    card: dict[str, str]  # slug -> text, without the title line
    facets: tuple[str, ...] = ()
    """The card fields that are the item's facets (``genres``; ``category``, ``brand``), in card order."""
    history: list[HistoryLink] = field(default_factory=list)
    request: list[RequestMatch] = field(default_factory=list)
    co: CoLink | None = None
    words: CatalogWords = MOVIE_WORDS
    """The catalog's words ("bought", "product"): the explanation's prompt says them, so its check allows them."""

    @property
    def matched_request(self) -> RequestMatch | None:
        return max(self.request, key=lambda r: r.similarity, default=None)

    def pieces(self) -> dict[str, str]:
        """Citable id -> the text of that piece (what the checker searches)."""
        out = {"title": f"{self.title} {display_title(self.title)} {self.year or ''}".strip()}
        for link in self.history:
            out[link.ref] = f"{link.title} {display_title(link.title)} {link.year or ''}".strip()
        if self.co is not None:
            out["co"] = co_sentence(self.co, self.title, self.words.verb)
        out.update(self.card)
        out.update({r.ref: r.text for r in self.request})
        return out

    def text(self) -> str:
        return "\n".join(self.pieces().values())

    def to_json(self) -> dict:
        matched = self.matched_request
        return {
            "title": self.title, "year": self.year, "facets": list(self.facets),
            "co": None if self.co is None else self.co.__dict__,
            "history": [link.__dict__ for link in self.history],
            "card": [{"ref": ref, "text": text} for ref, text in self.card.items()],
            "request": [r.__dict__ for r in self.request],
            "matched_request_part": matched.ref if matched else None,
            "words": asdict(self.words),
        }


    @classmethod
    def from_json(cls, item_id: str, data: dict, title: str = "", year: int | None = None) -> Evidence:
        """The inverse of :meth:`to_json` (a bench re-checks saved explanations); ``title`` and ``year``
        for JSON written before they were part of it."""
        card = {c["ref"]: c["text"] for c in data.get("card", [])}
        return cls(item_id=item_id, title=data.get("title") or title, year=data.get("year", year), card=card,
                   facets=tuple(data["facets"]) if "facets" in data else facet_fields(card, None),
                   history=[HistoryLink(**h) for h in data.get("history", [])],
                   request=[RequestMatch(**r) for r in data.get("request", [])],
                   co=CoLink(**data["co"]) if data.get("co") else None,
                   words=CatalogWords(**data["words"]) if data.get("words") else MOVIE_WORDS)


def co_sentence(link: CoLink, title: str, verb: str = MOVIE_WORDS.verb) -> str:
    """The collaborative link as evidence text (both title forms, so either may be cited), in the
    catalog's ``verb``."""
    return (f"{link.count} people who {verb} {display_title(link.title)} also {verb} {display_title(title)} "
            f"{link.title} {title}")


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def similar_history(item_vector: np.ndarray, history_vectors: np.ndarray, history: Sequence[tuple[str, str, int | None]],
                    n: int = HISTORY_PIECES) -> list[HistoryLink]:
    """The ``n`` history items (id, title, year) closest to the item by cosine similarity."""
    if len(history) == 0:
        return []
    sims = _unit(history_vectors) @ _unit(item_vector)[0]
    order = np.argsort(-sims, kind="stable")[:n]
    return [HistoryLink(f"h{rank}", history[i][0], history[i][1], history[i][2], round(float(sims[i]), 4))
            for rank, i in enumerate(order, start=1)]


def request_matches(card: Mapping[str, str], item_vector: np.ndarray, parts: Mapping[str, str],
                    part_vectors: np.ndarray | None) -> list[RequestMatch]:
    """How each request part relates to the item: vector similarity and the words they share."""
    card_words = set(tokenize(" ".join(card.values())))
    out = []
    for row, (ref, text) in enumerate(parts.items()):
        sim = float(_unit(part_vectors[row])[0] @ _unit(item_vector)[0]) if part_vectors is not None else 0.0
        shared = sorted({w for w in tokenize(text) if w in card_words and len(w) > 2})
        out.append(RequestMatch(ref, text, round(sim, 4), shared))
    return out


def facet_fields(card: Mapping[str, str], facets: Mapping | None) -> tuple[str, ...]:
    """The card fields of the named facets; without names (a caller that has only the card), a
    card's genres line, the one facet every catalog before facets had."""
    if facets is None:
        return ("genres",) if "genres" in card else ()
    return tuple(key for key in (slug(facet_label(name)) for name in facets) if key in card)


def build_evidence(item_id: str, card_text: str, meta: Mapping, item_vector: np.ndarray | None,
                   history: Sequence[tuple[str, str, int | None]] = (), history_vectors: np.ndarray | None = None,
                   request_parts: Mapping[str, str] | None = None,
                   part_vectors: np.ndarray | None = None, co: CoLink | None = None,
                   words: CatalogWords = MOVIE_WORDS) -> Evidence:
    """Evidence for one item from its stored card and metadata, the history, the request and the
    collaborative link ``co`` (the caller counts it: it needs the interactions); ``words``: the catalog's."""
    card = parse_card(card_text)
    title = str(meta.get("title") or card.pop("title", item_id))
    card.pop("title", None)
    evidence = Evidence(item_id=item_id, title=title, year=meta.get("year"), card=card,
                        facets=facet_fields(card, meta.get("facets")), co=co, words=words)
    if item_vector is not None and history_vectors is not None and len(history):
        evidence.history = similar_history(item_vector, history_vectors, history)
    if request_parts and item_vector is not None:
        evidence.request = request_matches(card, item_vector, request_parts, part_vectors)
    return evidence
