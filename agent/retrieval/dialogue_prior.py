"""What people recommend in conversations, learned from training dialogues (ReDial train).

Two counts over the catalog ids the dialogues name: how often a recommender named a movie first
(``recommended``: what people suggest when asked, which differs from what people rate), and how
often two movies were named in the same dialogue (``pairs``: "if you liked X, try Y" as people
say it, an item-item signal the ratings log does not have). Both are plain counts, so the artefact
is a small JSON file that ``recsage train-dialogues`` writes and the request retrieval reads
(agent.retrieval.request_fusion); parsing dialogues stays in eval/finetune.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent.core.errors import InputError
from agent.core.io import atomic_write_text

FORMAT = 1
FILE_NAME = "dialogue_prior.json"
PRIOR_DIR = "dialogues"
"""Folder of the artefact under the project's artefacts (beside ``retriever/``)."""


@dataclass
class DialoguePrior:
    recommended: Counter = field(default_factory=Counter)
    """Catalog id -> dialogues in which the recommender named it first."""
    pairs: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    """Catalog id -> {other id: dialogues naming both}."""
    mentions: Counter = field(default_factory=Counter)
    """Catalog id -> dialogues naming it (by anyone): the norm of the pair counts."""
    dialogues: int = 0

    def add(self, named: Sequence[str], recommended: Iterable[str]) -> None:
        """One dialogue: every catalog id it names (first mention order) and those the recommender
        named first."""
        named = list(dict.fromkeys(named))
        self.dialogues += 1
        self.recommended.update(set(recommended))
        self.mentions.update(named)
        for a in named:
            for b in named:
                if a != b:
                    self.pairs[a][b] += 1

    def scores(self, seeds: Sequence[str], item_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Per item of ``item_ids``: "comention", the cosine of its mentions with the seeds'
        (summed over seeds; zero without seeds), and "recommended", log(1 + times recommended)."""
        index = {item: n for n, item in enumerate(item_ids)}
        co = np.zeros(len(item_ids))
        for seed in dict.fromkeys(seeds):
            for other, count in self.pairs.get(seed, {}).items():
                if other in index:
                    co[index[other]] += count / math.sqrt(self.mentions[seed] * self.mentions[other])
        rec = np.log1p(np.asarray([self.recommended.get(i, 0) for i in item_ids], dtype=np.float64))
        return {"comention": co, "recommended": rec}

    # --- artefact -------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {"format": FORMAT, "dialogues": self.dialogues, "recommended": dict(self.recommended),
                "mentions": dict(self.mentions), "pairs": {a: dict(c) for a, c in self.pairs.items()}}

    def save(self, folder: Path) -> Path:
        path = Path(folder) / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_json(), sort_keys=True))
        return path

    @classmethod
    def from_json(cls, data: Mapping) -> DialoguePrior:
        if data.get("format") != FORMAT:
            raise InputError(f"dialogue prior format {data.get('format')!r} is not {FORMAT}: "
                             "rerun `recsage train-dialogues`")
        prior = cls(Counter(data["recommended"]), defaultdict(Counter), Counter(data["mentions"]),
                    int(data["dialogues"]))
        for a, counts in data["pairs"].items():
            prior.pairs[a] = Counter(counts)
        return prior


def load_prior(folder: Path) -> DialoguePrior | None:
    """The artefact in ``folder`` (the project's artefacts), or None when no training ran."""
    path = Path(folder) / FILE_NAME
    if not path.is_file():
        return None
    try:
        return DialoguePrior.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path} is not a dialogue prior ({exc}): rerun `recsage train-dialogues`") from None
