"""Okapi BM25, the lexical baseline of the request benchmark.

A learned retriever and an LLM reranker only earn their cost if they beat plain word matching on
the same facts, so the baseline is BM25 over each item's title, facets (genres) and tags (no plots: those
are what a reader of text is supposed to add). Written here (about forty lines) to keep the
baseline dependency-free and its formula visible.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable

from agent.core.text import tokenize
from agent.ingest.catalog import Item


class Bm25Index:
    """BM25 with idf = ln(1 + (N - df + 0.5) / (df + 0.5)) (never negative, as in Lucene).

    score(d, q) = sum over distinct query terms t of
    idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl)).
    """

    def __init__(self, docs: dict[str, str], k1: float = 1.2, b: float = 0.75,
                 tokenizer: Callable[[str], list[str]] = tokenize):
        if not docs:
            raise ValueError("BM25 needs at least one document")
        self.k1, self.b, self.tokenizer = k1, b, tokenizer
        self.ids = [str(i) for i in docs]
        counts = [Counter(tokenizer(text)) for text in docs.values()]
        self.lengths = [sum(c.values()) for c in counts]
        self.avgdl = (sum(self.lengths) / len(self.lengths)) or 1.0
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for doc, counter in enumerate(counts):
            for term, tf in counter.items():
                self.postings.setdefault(term, []).append((doc, tf))
        n = len(self.ids)
        self.idf = {t: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self.postings.items()}

    def scores(self, text: str) -> dict[int, float]:
        """Document index -> score, for documents sharing at least one term with the query."""
        out: dict[int, float] = {}
        for term in dict.fromkeys(self.tokenizer(text)):
            for doc, tf in self.postings.get(term, ()):
                norm = self.k1 * (1 - self.b + self.b * self.lengths[doc] / self.avgdl)
                out[doc] = out.get(doc, 0.0) + self.idf[term] * tf * (self.k1 + 1) / (tf + norm)
        return out

    def search(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        """Top k (id, score), best first, ties by id; documents sharing no term are left out."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scored = sorted(self.scores(text).items(), key=lambda kv: (-kv[1], self.ids[kv[0]]))
        return [(self.ids[doc], score) for doc, score in scored[:k]]


def catalog_bm25_docs(items: Iterable[Item]) -> dict[str, str]:
    """One document per item: its title, facet values (a movie's genres) and tags (the benchmark's
    lexical baseline)."""
    return {item.id: " ".join([item.title, *(v for values in item.facets.values() for v in values), *item.tags])
            for item in items}


def bm25_ranker(items: Iterable[Item], k: int = 100) -> Callable[[str], list[str]]:
    """ranker(text) -> ranked item ids, ready for :func:`eval.requests.evaluate_requests`."""
    index = Bm25Index(catalog_bm25_docs(items))
    return lambda text: [doc_id for doc_id, _ in index.search(text, k)]
