"""``recsage train-dialogues``: the dialogue prior (agent.retrieval.dialogue_prior) from ReDial
training dialogues: what recommenders named, and which movies were named together.

Only a training file goes in (ReDial ``train_data.jsonl``); the conversation benchmark's dialogues
(valid, test) never do. Movies are mapped to catalog ids by title and year, as the benchmark maps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from agent.ingest.catalog import Item
from agent.retrieval.dialogue_prior import PRIOR_DIR
from eval.conversations.dialogues import load_dialogues
from eval.conversations.mapping import TitleMapper
from eval.conversations.prior import build_prior


def train_dialogue_prior(path: Path, items: Iterable[Item], counts: Mapping[str, int], out_dir: Path,
                         limit: int | None = None) -> dict:
    """Build and save the prior from a ReDial file; returns what was counted and where it went."""
    dialogues, skipped = load_dialogues(path, limit)
    prior = build_prior(dialogues, TitleMapper(items, counts))
    saved = prior.save(Path(out_dir) / PRIOR_DIR)
    return {"dialogues": prior.dialogues, "skipped_lines": skipped, "movies": len(prior.mentions),
            "recommended_movies": len(prior.recommended),
            "pairs": sum(len(c) for c in prior.pairs.values()) // 2, "path": str(saved)}
