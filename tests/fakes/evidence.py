"""Evidence for one Toy Story 2 pick (a card, two history items, an optional request), shared by the
checker and the generator tests."""

from __future__ import annotations

import numpy as np

from agent.explain.evidence import Evidence, build_evidence

CARD = """Title: Toy Story 2 (1999)
Genres: Adventure, Animation, Children, Comedy
Director: John Lasseter
Cast: Tom Hanks, Tim Allen
Tags: Pixar, sequel
Plot: When Woody is stolen by a toy collector, Buzz and his friends set out to rescue him."""


def toy_story_evidence(card: str = CARD, request: str | None = None, title: str = "Toy Story 2",
                       year: int = 1999) -> Evidence:
    parts = {"query": request} if request else None
    return build_evidence(
        "3114", card, {"title": title, "year": year}, np.array([1.0, 0.0]),
        history=[("1", "Toy Story", 1995), ("2571", "Matrix, The", 1999)],
        history_vectors=np.array([[1.0, 0.1], [0.1, 1.0]]),
        request_parts=parts, part_vectors=np.array([[1.0, 0.0]]) if parts else None,
    )
