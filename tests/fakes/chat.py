"""A small fake Recommender (the agent/recommend.py contract) and catalog for the chat's unit tests:
it honours filters, exclusions and seed histories like the real one, so state logic is observable."""

from __future__ import annotations

import threading

from agent.chat.agent import ChatAgent
from agent.chat.catalog import ChatCatalog
from agent.chat.tool_choice import ToolChooser
from agent.chat.tools import load_tools
from agent.core.config import Settings
from agent.core.errors import InputError
from agent.core.project import MOVIE_WORDS, CatalogWords
from agent.ingest.catalog import Item

ITEMS = [
    Item(id="1", title="Toy Story", year=1995, facets={"genres": ("Animation", "Children", "Comedy")}, tags=("toys", "pixar")),
    Item(id="2", title="Toy Soldiers", year=1991, facets={"genres": ("Action", "Drama")}, tags=("toys", "school")),
    Item(id="3", title="Scream", year=1996, facets={"genres": ("Horror", "Thriller")}, tags=("slasher", "funny")),
    Item(id="4", title="Shrek", year=2001, facets={"genres": ("Animation", "Comedy", "Fantasy")}, tags=("funny", "ogre")),
    Item(id="5", title="Matrix, The", year=1999, facets={"genres": ("Action", "Sci-Fi")}, tags=("virtual reality",)),
    Item(id="6", title="Finding Nemo", year=2003, facets={"genres": ("Animation", "Children")}, tags=("fish", "funny")),
    Item(id="7", title="Saw", year=2004, facets={"genres": ("Horror", "Thriller")}, tags=("gore",)),
    Item(id="8", title="Cars", year=2006, facets={"genres": ("Animation", "Comedy")}, tags=("pixar", "funny", "toys")),
    Item(id="9", title="Inception", year=2010, facets={"genres": ("Action", "Sci-Fi", "Thriller")}, tags=("dreams",)),
    Item(id="10", title="Up", year=2009, facets={"genres": ("Animation", "Comedy")}, tags=("pixar", "funny")),
]


class FakeRecommender:
    """Ranks by word overlap with the query (or genre overlap with a seed history)."""

    def __init__(self, items=ITEMS):
        self.items = {i.id: i for i in items}
        self.calls: list[dict] = []
        self.lock = threading.Lock()

    def _score(self, item: Item, query: str | None, history: list[str]) -> float:
        words = set((query or "").lower().split())
        genres = item.facets.get("genres", ())
        text = " ".join([item.title, *genres, *item.tags]).lower()
        score = sum(1.0 for w in words if w in text)
        for seed in history:
            score += len(set(self.items[seed].facets.get("genres", ())) & set(genres))
        return score - int(item.id.lstrip("p")) / 1000  # stable, id-ordered ties

    def recommend(self, *, user=None, history=None, k=10, query=None, image=None, audio=None, filters=None,
                  exclude=(), explain=False, rerank=None, liked=(), mentioned=()) -> dict:
        with self.lock:
            self.calls.append({"user": user, "history": history, "query": query, "filters": filters,
                               "exclude": list(exclude), "k": k, "explain": explain, "liked": list(liked)})
        if user is not None and user not in ("1", "2"):
            raise InputError(f"unknown user {user!r}")
        if user is None and not history and not query and not liked:
            raise InputError("nothing to recommend from: give a user, a history, or a request")
        seen = set(history or []) | set(exclude)
        rows = []
        for item in self.items.values():
            if item.id in seen or (filters is not None and not _passes(item, filters)):
                continue
            rows.append((self._score(item, query, list(history or liked or [])), item))
        rows.sort(key=lambda r: -r[0])
        items = [{"id": it.id, "title": it.title, "year": it.year, "facets": _facets(it), "rank": rank,
                  "score": s, "explanation": f"{it.title} fits." if explain else None,
                  "explanation_status": "generated" if explain else None, "cites": []}
                 for rank, (s, it) in enumerate(rows[:k], start=1)]
        return {"user": user, "history_size": len(history or []), "request_text": {"query": query} if query else {},
                "reranked": False, "items": items, "timings": {}}

    def item(self, item_id: str) -> dict:
        if item_id not in self.items:
            raise InputError(f"unknown item id {item_id!r}")
        it = self.items[item_id]
        return {"id": it.id, "title": it.title, "year": it.year, "facets": _facets(it), "tags": list(it.tags),
                "card": f"{it.title} ({it.year}). Genres: {', '.join(it.facets.get('genres', ()))}.", "poster": None}


def _facets(item: Item) -> dict[str, list[str]]:
    return {name: list(values) for name, values in item.facets.items()}


def _passes(item: Item, filters) -> bool:
    return filters.keeps(item.facets, item.year)


SHOP = [
    Item(id="p1", title="Trail Runner", facets={"category": ("Running Shoes",), "brand": ("Acme",)}, tags=("grip",)),
    Item(id="p2", title="Road Racer", facets={"category": ("Running Shoes",), "brand": ("Zest",)}, tags=("light",)),
    Item(id="p3", title="Court Classic", facets={"category": ("Sneakers",), "brand": ("Acme",)}, tags=("white",)),
    Item(id="p4", title="Wool Socks", facets={"category": ("Socks",), "brand": ("Acme",)}, tags=("warm",)),
]
"""A catalog that is not movies: facets category and brand, no genres, no years."""


def fake_agent(settings: Settings | None = None, tools=None, chooser=None, items=ITEMS,
               words: CatalogWords = MOVIE_WORDS) -> ChatAgent:
    """A ChatAgent over the fake recommender, rule-based tool choice (no model), built-in tools;
    ``words``: the catalog's words."""
    settings = settings or Settings()
    catalog = ChatCatalog(items, words=words)
    return ChatAgent(FakeRecommender(items), settings, catalog=catalog, tools=tools or load_tools(words=words),
                     chooser=chooser or ToolChooser(None, mode="rules"))
