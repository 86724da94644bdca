"""What the reranker reads: the request and history lines, and each candidate card compacted to a
few fields, truncated and fenced inside <item> ... </item>.

Catalog text is data, not instructions: angle brackets are escaped so a card cannot close its fence
or forge chat-template tokens (the system prompt, prompts/rerank_pointwise.j2, says so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from agent.ingest.cards import card_fields

SEQUENTIAL_REQUEST = "the movie this viewer will want to watch next, given what they recently watched"
"""The request text when there is none (history-only recommendation): the sequential task."""
HISTORY_TITLES = 10
"""Most recent history items the reranker reads (older ones add tokens, not signal)."""


def title_line(meta: Mapping) -> str:
    """How the reranker names a history item: "Title (year)", as in training and evaluation."""
    title, year = str(meta.get("title", "")).strip(), meta.get("year")
    return f"{title} ({year})" if year not in (None, "", -1) else title


REQUEST_CHARS = 2000
"""Characters of the request the reranker reads (the API's own query limit): every candidate's score
runs over the request, so a pasted essay would cost every candidate its length."""
CARD_CHARS = 160
"""Characters of each candidate's rerank view: every candidate shares one prompt, so each stays short."""
# Card lines the reranker reads, in this order (people, poster OCR and long fields cost tokens
# and, measured on the request benchmark's validation half, added nothing).
RERANK_FIELDS = ("Genres", "Tags", "Plot", "Audio transcript", "Image")
NOT_RERANKED = ("Director", "Writer", "Cast", "Poster text")
"""Card lines left out. Any other line (another catalog's facets and text fields: Category, Brand,
Description) is read after Genres, in card order."""
SENTINEL = "\u2063CARD\u2063"  # marks where a pointwise card goes; never appears in a card after escaping

_TAG_RE = re.compile(r"[<>]")


def fence_text(text: str, max_chars: int = CARD_CHARS) -> str:
    """Make item text safe to place inside <item> ... </item>: whitespace-tidied, truncated at a word
    boundary to ``max_chars`` and with every angle bracket escaped, so it cannot close the fence,
    open a new item or forge a chat-template token such as <|im_end|>."""
    text = "\n".join(" ".join(line.split()) for line in str(text).splitlines() if line.strip())
    text = text.replace(SENTINEL, "")
    if max_chars and len(text) > max_chars:
        cut = text[:max_chars]
        space = max(cut.rfind(" "), cut.rfind("\n"))
        text = (cut[:space] if space > max_chars // 2 else cut).rstrip() + "..."
    return _TAG_RE.sub(lambda m: "&lt;" if m.group() == "<" else "&gt;", text)


def rerank_view(card: str) -> str:
    """The compact text of a context card that the reranker reads: "Title (year) | genres | tags |
    plot ...", fields in :data:`RERANK_FIELDS` order, a catalog's own fields after the genres.
    Text that is not a card passes through."""
    fields = {label: value for label, value in card_fields(str(card)).items() if value}
    if "Title" not in fields:
        return str(card)
    own = [f for f in fields if f != "Title" and f not in RERANK_FIELDS and f not in NOT_RERANKED]
    order = [RERANK_FIELDS[0], *own, *RERANK_FIELDS[1:]]
    return " | ".join([fields["Title"]] + [fields[f] for f in order if f in fields])
