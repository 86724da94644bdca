"""Diversity re-ranking for every surface: at most ``max_per_series`` items of one franchise in a
list (title stems: "Friday the 13th Part 3" and "Friday the 13th Part VII" share "friday the 13th"),
then maximal marginal relevance over card vectors so near-duplicates do not fill the top.

Relevance is the rank in the incoming order (scores of different paths are on different scales),
so the function works on any ranked list: recommend, the chat's tools, the request path.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from agent.core.text import normalise

MAX_PER_SERIES = 2
MMR_LAMBDA = 0.85
"""Weight of relevance against similarity to what is already picked (1 = no MMR)."""
_SEQUEL = re.compile(r"\b(part|chapter|episode|vol|volume)\b.*$|\b(\d{1,2}|ii|iii|iv|v|vi|vii|viii|ix|x)\b.*$")
_ARTICLE = re.compile(r"^(the|a|an) ")


def series_stem(title: str) -> str:
    """A franchise key: the title before a subtitle, a part number or a sequel numeral, articles
    dropped ("Friday the 13th Part 2" -> "friday the 13th", "Scream 3" -> "scream")."""
    base = re.sub(r"\s*\([^)]*\)", "", title)
    if ", " in base and base.rsplit(", ", 1)[1].lower() in ("the", "a", "an"):
        base = base.rsplit(", ", 1)[0]
    head = normalise(re.split(r"[:\-–]| and the ", base)[0]) or normalise(base)
    head = _ARTICLE.sub("", head)
    # keep a number that is the whole title or part of the name ("friday the 13th", "se7en")
    cut = _SEQUEL.sub("", head).strip() if len(head.split()) > 1 else head
    return cut or head


def intra_list_similarity(vectors: Sequence[np.ndarray]) -> float:
    """Mean pairwise cosine of a list's card vectors (lower is more diverse); 0 for fewer than two."""
    if len(vectors) < 2:
        return 0.0
    m = np.asarray(vectors, dtype=np.float64)
    m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    sims = m @ m.T
    n = len(m)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def diversify(rows: Sequence[dict], k: int, vectors: Mapping[str, np.ndarray] | None = None,
              max_per_series: int = MAX_PER_SERIES, lam: float = MMR_LAMBDA) -> list[dict]:
    """The first ``k`` of ``rows`` (dicts with "id" and "title", best first) re-ranked: never more
    than ``max_per_series`` of one title stem while other rows remain, and MMR over ``vectors``
    (id -> card vector; rows without one count as dissimilar). ``max_per_series`` 0: no cap."""
    pool = list(rows)
    n = len(pool)
    relevance = {r["id"]: 1.0 - i / max(n, 1) for i, r in enumerate(pool)}
    unit = {i: v / max(float(np.linalg.norm(v)), 1e-12) for i, v in (vectors or {}).items()}
    picked: list[dict] = []
    stems: Counter[str] = Counter()
    while pool and len(picked) < k:
        allowed = [r for r in pool if not max_per_series or stems[series_stem(r["title"] or "")] < max_per_series]
        best = max(allowed or pool, key=lambda r: _mmr(r, picked, relevance, unit, lam))
        picked.append(best)
        stems[series_stem(best["title"] or "")] += 1
        pool.remove(best)
    return picked


def _mmr(row: dict, picked: list[dict], relevance: Mapping[str, float], unit: Mapping[str, np.ndarray],
         lam: float) -> float:
    vector = unit.get(row["id"])
    similarity = max((float(vector @ unit[p["id"]]) for p in picked if p["id"] in unit), default=0.0) \
        if vector is not None else 0.0
    return lam * relevance[row["id"]] - (1 - lam) * similarity
