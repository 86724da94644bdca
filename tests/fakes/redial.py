"""A hand-made ReDial file, catalog and interactions log for the conversation benchmark's unit tests.

The dialogue (seeker 1, recommender 2), messages joined per speaker:

0 assistant  "hi there" + "@101 is great"          names 101 before the seeker spoke: no turn
1 user       "I like action" + "like @102"          names 102
2 assistant  "try @101 or @103"                     turn: new 103 (101 named before)
3 user       "seen @103"
4 assistant  "@104 then"                            turn: new 104, which is not in the catalog
5 user       "ok"
6 assistant  "@105 and @102"                        turn: new 105 (102 named before)

101 The Matrix (1999) -> "1" (MovieLens writes "Matrix, The"), 102 Heat (1995) -> "2",
103 Toy Story (1995) -> "3", 104 Unknown Film (2001) -> none, 105 "Jaws  (1975)" -> "5".
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from agent.ingest.catalog import Item

SEEKER, RECOMMENDER = 1, 2

DIALOGUE = {
    "conversationId": "d1",
    "initiatorWorkerId": SEEKER,
    "respondentWorkerId": RECOMMENDER,
    "movieMentions": {"101": "The Matrix (1999)", "102": "Heat (1995)", "103": "Toy Story (1995)",
                      "104": "Unknown Film (2001)", "105": "Jaws  (1975)"},
    "messages": [{"senderWorkerId": sender, "text": text} for sender, text in [
        (RECOMMENDER, "hi there"), (RECOMMENDER, "@101 is great"),
        (SEEKER, "I like action"), (SEEKER, "like @102"),
        (RECOMMENDER, "try @101 or @103"),
        (SEEKER, "seen @103"),
        (RECOMMENDER, "@104 then"),
        (SEEKER, "ok"),
        (RECOMMENDER, "@105 and @102"),
    ]],
}

ITEMS = [
    Item(id="1", title="Matrix, The", year=1999, facets={"genres": ("Action", "Sci-Fi")}),
    Item(id="2", title="Heat", year=1995, facets={"genres": ("Action", "Crime")}),
    Item(id="3", title="Toy Story", year=1995, facets={"genres": ("Animation",)}),
    Item(id="5", title="Jaws", year=1975, facets={"genres": ("Horror",)}),
    Item(id="6", title="Alien", year=1979, facets={"genres": ("Horror", "Sci-Fi")}),
]

HISTORIES = {"u1": ["1", "2", "3"], "u2": ["1", "3"], "u3": ["5", "6"], "u4": ["2", "5"], "u5": ["3"]}
"""Events per item: 3 has 3, items 1, 2 and 5 have 2, item 6 has 1."""


def interactions() -> pd.DataFrame:
    """The frame agent.retrieval.interactions.load_interactions returns (string user and item)."""
    rows = [(user, item, n) for user, items in HISTORIES.items() for n, item in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    frame["rating"] = float("nan")
    return frame


def write_dialogues(path: Path, bad_lines: tuple[str, ...] = ()) -> Path:
    """The dialogue as a JSONL file, after ``bad_lines`` (written as they are)."""
    path.write_text("".join(f"{line}\n" for line in bad_lines) + json.dumps(DIALOGUE) + "\n", encoding="utf-8")
    return path
