"""Context cards: the short text an LLM later reads about an item, rendered from catalog facts and
parsed back into fields (by explanations, the reranker's compact view and request-only search)."""

from __future__ import annotations

import re

from agent.ingest.catalog import Item
from prompts import render

CARD_VERSION = "2"
"""Bump when card or embedding-text logic changes: it is part of every item's content hash."""
MAX_FIELD_CHARS = 400
MAX_CAST = 5
# Media-derived fields in card order, with the label the LLM sees.
MEDIA_LABELS = {"poster_text": "Poster text", "caption": "Image", "transcript": "Audio transcript",
                "video_text": "Video text", "video_transcript": "Video transcript"}
PEOPLE_LABELS = {"director": "Director", "writer": "Writer", "cast": "Cast"}


def facet_label(name: str) -> str:
    """How a facet is labelled on the card: "genres" -> "Genres", "shoe_width" -> "Shoe width".
    Only letters and spaces, at most 31 characters, so that :func:`card_fields` reads the line
    back as a field (:func:`slug` of the label is the facet's key in parsed cards)."""
    return " ".join(re.sub(r"[^A-Za-z]+", " ", name).split())[:31].capitalize() or "Facet"


def _clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


# Left out of the text that gets embedded: MiniLM represents names poorly, so cast lists dilute
# what a card is about (Toy Story fell from 1st to 9th for "animated toys come to life"), and
# poster OCR mostly repeats the title with recognition noise. The card the LLM reads keeps both.
NOT_EMBEDDED_MEDIA = ("poster_text", "video_text")  # on-screen text: the title again, like posters


def build_embedding_text(item: Item, media: dict[str, str] | None = None) -> str:
    """The text whose vector represents the item: the card without people and poster OCR."""
    media = {k: v for k, v in (media or {}).items() if k not in NOT_EMBEDDED_MEDIA}
    return build_card(item, media, with_people=False)


def build_card(item: Item, media: dict[str, str] | None = None, with_people: bool = True) -> str:
    """Render the card from catalog facts plus converter output (poster text, transcript...)."""
    people = [
        (PEOPLE_LABELS.get(role, role.capitalize()), names[:MAX_CAST] if role == "cast" else names)
        for role, names in item.people.items()
        if names and with_people
    ]
    media = media or {}
    media_lines = [
        (label, _clip(media[key])) for key, label in MEDIA_LABELS.items() if media.get(key, "").strip()
    ]
    return render(
        "context_card.j2",
        title=item.title,
        year=item.year,
        facets=[(facet_label(name), list(values)) for name, values in item.facets.items() if values],
        people=people,
        tags=list(item.tags),
        text=[(name.capitalize(), _clip(value)) for name, value in item.text.items() if value.strip()],
        media=media_lines,
    )


# --- parsing a rendered card --------------------------------------------------------------------

_FIELD = re.compile(r"^([A-Z][A-Za-z ]{0,30}):\s*(.*)$")
_TITLE_YEAR = re.compile(r"\s*\(\d{4}\)$")


def slug(label: str) -> str:
    """A card label as a field key: "Poster text" -> "poster_text"."""
    return "_".join(label.lower().split())


def card_fields(card: str) -> dict[str, str]:
    """A context card's ``Label: value`` lines as {label: value}, labels as written ("Poster text")
    and the title with its year, as the card shows them.

    A line that is not ``Label: value`` continues the previous field (a multi-line plot)."""
    fields: dict[str, str] = {}
    last = None
    for line in (card or "").splitlines():
        match = _FIELD.match(line.strip())
        if match:
            last = match.group(1).strip()
            fields[last] = match.group(2).strip()
        elif last and line.strip():
            fields[last] += " " + line.strip()
    return fields


def parse_card(card: str) -> dict[str, str]:
    """A context card's fields as {slug: value} (see :func:`card_fields`); the title loses its year."""
    fields: dict[str, str] = {}
    for label, value in card_fields(card).items():
        fields[slug(label)] = value
    if "title" in fields:
        fields["title"] = _TITLE_YEAR.sub("", fields["title"])
    return fields
