"""The Recommender: the one recommendation call every surface uses (CLI, chat agent, HTTP server).

request (typed text, voice note, photo) -> text parts -> candidates (hybrid retriever over the
history, steered by the request's vector; or hybrid text search when there is no history) ->
optional LLM rerank of the top candidates -> evidence per pick -> optional grounded explanations.

Everything heavy loads on first use and is shared: the retriever's vectors, the MiniLM embedder,
OCR and Whisper, the reranker and the explainer (both on the one cached LLM, see agent.llm). A
lock around each lazy load makes one Recommender safe to call from several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from agent.core.config import Settings, load_settings
from agent.core.errors import InputError
from agent.core.project import Project
from agent.core.timing import Stopwatch
from agent.explain.evidence import CoLink, build_evidence
from agent.ingest.cards import parse_card
from agent.ingest.store import decode_facets
from agent.recommend.arguments import explained_count, validate, with_understood
from agent.recommend.media import photo_vector, request_parts
from agent.rerank.prompt import HISTORY_TITLES, title_line
from agent.retrieval.diversity import diversify
from agent.retrieval.retriever import Filters

DIVERSITY_POOL = 40
"""Rows whose card vectors the diversity re-ranking compares (the head of the ranked list)."""
SEARCH_POOL = 200


class Recommender:
    """Loads lazily: retriever, store, text embedder, OCR/Whisper converters, reranker, explainer."""

    def __init__(self, project: Project, settings: Settings | None = None, system: str = "hybrid"):
        from agent.retrieval.retriever import SYSTEMS, require_store

        if system not in SYSTEMS:
            raise InputError(f"unknown system {system!r}; choose from: {', '.join(SYSTEMS)}")
        require_store(project)
        self.project, self.system = project, system
        self.words = project.words  # decided once: the catalog's format check reads the disk
        self.settings = settings or load_settings()
        self._lock = threading.RLock()
        self._parts: dict[str, object] = {}
        self.wrap_part: Callable[[str, object], object] = lambda name, part: part
        """Applied to each part as it is built: the server puts its model queues in front here."""
        self.read_query: Callable[[str], dict] | None = None
        """How ``recommend(understand=True)`` reads a typed query: agent.chat.request's reading of one
        user message as retrieval arguments (liked, mentioned, exclude, facets, year_min, year_max),
        wired in by agent.cli for the CLI and the server alike (agent.recommend sits below agent.chat)."""

    # --- lazily loaded parts ----------------------------------------------------------------------

    def _part(self, name: str, build: Callable[[], object]):
        with self._lock:
            if name not in self._parts:
                self._parts[name] = self.wrap_part(name, build())
            return self._parts[name]

    @property
    def retriever(self):
        from agent.retrieval.retriever import open_retriever

        return self._part("retriever", lambda: open_retriever(self.project, self.settings))

    @property
    def store(self):
        if self.project.interactions is None:  # a catalog without a log: request-only search still works
            from agent.retrieval.retriever import open_project_store

            return self._part("store", lambda: open_project_store(self.project))
        return self.retriever.store

    @property
    def embedder(self):
        from agent.ingest.pipeline import build_text_embedder

        return self._part("embedder", lambda: build_text_embedder(self.settings))

    @property
    def searcher(self):
        from agent.retrieval.text_search import HybridTextSearch

        return self._part("searcher", lambda: HybridTextSearch(self.store, self.settings, self.catalog_items()))

    def catalog_items(self) -> list:
        """Every item in the store as a catalog Item (title, year, facets, tags from its card), so
        request-only search covers exactly what was ingested, MovieLens or any other catalog."""
        from agent.ingest.catalog import Item
        from agent.ingest.store import TEXT_COLLECTION

        got = self.store.collection(TEXT_COLLECTION, create=False).get(include=["metadatas", "documents"])
        items = []
        for item_id, meta, card in zip(got["ids"], got["metadatas"], got["documents"], strict=True):
            meta, fields = meta or {}, parse_card(card or "")
            items.append(Item(
                id=item_id, title=meta.get("title") or fields.get("title") or item_id, year=meta.get("year"),
                facets=decode_facets(meta),
                tags=tuple(_tags(fields)),
            ))
        return items

    @property
    def reranker(self):
        from agent.rerank.reranker import load_reranker

        return self._part("reranker", lambda: load_reranker(self.settings, words=self.words))

    @property
    def explainer(self):
        from agent.explain.generate import Explainer

        return self._part("explainer", lambda: Explainer(self.settings))

    @property
    def cooccurrence(self):
        from agent.explain.cooccur import CoOccurrence

        return self._part("cooccurrence", lambda: CoOccurrence(self.retriever.split))

    @property
    def dialogue_prior(self):
        """What people recommend in conversations (``recsage train-dialogues``), None before it ran."""
        from agent.retrieval.dialogue_prior import PRIOR_DIR, load_prior

        return self._part("dialogue_prior", lambda: load_prior(self.project.store.artifacts_dir / PRIOR_DIR))

    def converter(self, name: str):
        from agent.plugins import load_converter

        return self._part(f"converter:{name}", lambda: load_converter(self.settings, name))

    def request_text(self, query: str | None = None, image: Path | None = None,
                     audio: Path | None = None, video: Path | None = None) -> dict[str, str]:
        """Every modality of the request as text (agent.recommend.media)."""
        return request_parts(self.converter, query, image, audio, video)

    def _history(self, user: str | None, history: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
        """Dense history indices (time order) and the given ids that are not known items."""
        if user is not None and history is not None:
            raise InputError("give a user or a history, not both")
        if user is not None:
            return self.retriever.user_history(str(user)), []
        if history is None:
            return np.zeros(0, dtype=np.int64), []
        ids = [str(i).strip() for i in history if str(i).strip()]
        if not ids:
            raise InputError("the history is empty: give at least one item id (--history ID,ID,...)")
        dense, unknown = self.retriever.history_from_ids(ids)
        if len(dense) == 0:
            raise InputError(f"none of the history ids {ids[:5]} is a known item: the history is empty")
        return dense, unknown

    # --- candidates ---------------------------------------------------------------------------------

    def _from_history(self, dense, pool: int, filters, query_vector) -> list[dict]:
        candidates, _ = self.retriever.recommend(dense, min(pool, self.retriever.split.n_items),
                                                 system=self.system, filters=filters, query_vector=query_vector)
        return [{"id": c.id, "title": c.title, "year": c.year, "facets": c.facets, "score": c.score}
                for c in candidates]

    def _from_request(self, text: str, pool: int, filters: Filters | None,
                      photo_vector: np.ndarray | None = None) -> list[dict]:
        """Request-only candidates (no history): hybrid text search (fused with the photo's image
        vector when there is one), filtered on stored metadata."""
        from agent.retrieval.photo import fuse_photo, image_hits

        if filters is not None and filters.active():
            self.retriever.check_filters(filters)
        ranked = self.searcher.search(text, max(pool, SEARCH_POOL))
        if photo_vector is not None:
            ranked = fuse_photo(ranked, image_hits(self.store, photo_vector), self.settings.photo_image_weight,
                                max(pool, SEARCH_POOL))
        meta = self._stored([i for i, _ in ranked])
        rows = []
        for item_id, score in ranked:
            m = meta.get(item_id, {}).get("metadata", {})
            row = {"id": item_id, "title": m.get("title", ""), "year": m.get("year"),
                   "facets": _facets_json(m), "score": round(score, 6)}
            if filters is None or filters.keeps(row["facets"], row["year"]):
                rows.append(row)
        return rows[:pool]

    def _from_parts(self, liked: Sequence[str], mentioned: Sequence[str], text: str, pool: int,
                    filters: Filters | None) -> list[dict]:
        """The structured request's retrieval: liked titles and the conversation's titles
        (pseudo-histories), the dialogue prior, text and popularity, fused (agent.retrieval.request_fusion)."""
        from agent.retrieval.request_fusion import fuse, request_parts, text_scores

        retriever = self.retriever
        if filters is not None and filters.active():
            retriever.check_filters(filters)
        dense, _ = retriever.history_from_ids([str(i) for i in liked])
        around, _ = retriever.history_from_ids([str(i) for i in mentioned])
        hits = self.searcher.search(text, SEARCH_POOL) if text.strip() else None
        text_part = None if hits is None else text_scores(hits, retriever.split.item_index, retriever.split.n_items)
        scores = fuse(request_parts(retriever, dense, text_part, around, self.dialogue_prior,
                                    list(dict.fromkeys([*map(str, liked), *map(str, mentioned)]))))
        scores[dense] = -np.inf
        scores[~retriever.stored] = -np.inf
        if filters is not None and filters.active():
            scores[~retriever.filter_mask(filters)] = -np.inf
        top = [i for i in np.argsort(-scores, kind="stable")[:pool] if np.isfinite(scores[i])]
        meta = retriever.item_meta
        return [{"id": retriever.split.item_ids[i], "title": meta[i].get("title", ""), "year": meta[i].get("year"),
                 "facets": _facets_json(meta[i]), "score": round(float(scores[i]), 6)} for i in top]

    def _rerank(self, rows: list[dict], request: str, history_titles: list[str]) -> list[dict]:
        from agent.rerank.reranker import rerank_ranking

        depth = self.settings.rerank_depth
        cards = {i: r["document"] for i, r in self.store.get([r["id"] for r in rows[:depth]]).items()}
        order = rerank_ranking(self.reranker, request, [(r["id"], r["score"]) for r in rows], cards,
                               k=depth, alpha=self.settings.rerank_alpha, history_titles=history_titles)
        by_id = {r["id"]: r for r in rows}
        return [by_id[i] for i in order]

    # --- evidence -----------------------------------------------------------------------------------

    def _stored(self, ids: list[str]) -> dict[str, dict]:
        """Records by id; none asked, none fetched (Chroma refuses an empty id list)."""
        return self.store.get(ids) if ids else {}

    def _vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        from agent.ingest.store import TEXT_COLLECTION

        got = self.store.collection(TEXT_COLLECTION, create=False).get(ids=ids, include=["embeddings"])
        return {i: np.asarray(v, dtype=np.float32) for i, v in zip(got["ids"], got["embeddings"], strict=True)}

    def _evidence(self, rows: list[dict], dense: np.ndarray, request: dict[str, str], part_vectors):
        retriever = self.retriever
        history = [(retriever.split.item_ids[i], retriever.item_meta[i].get("title", ""),
                    retriever.item_meta[i].get("year")) for i in dense]
        history_vectors = retriever.content_items[dense] if len(dense) else None
        stored = self._stored([r["id"] for r in rows])
        vectors = self._vectors([r["id"] for r in rows]) if rows else {}
        return [build_evidence(r["id"], stored.get(r["id"], {}).get("document") or "", r, vectors.get(r["id"]),
                               history, history_vectors, request, part_vectors, self._co_link(r["id"], dense, history),
                               words=self.words)
                for r in rows]

    def _co_link(self, item_id: str, dense: np.ndarray, history: list[tuple]) -> CoLink | None:
        """The history item most people share with the pick, and how many (None for an item outside
        the interactions, e.g. a request's pick nobody rated yet)."""
        pick = self.retriever.split.item_index.get(item_id)
        found = self.cooccurrence.strongest(pick, dense) if pick is not None and len(dense) else None
        return None if found is None else CoLink(*history[found[0]], found[1])

    # --- the call -----------------------------------------------------------------------------------

    def recommend(self, *, user: str | None = None, history: Sequence[str] | None = None, k: int = 10,
                  query: str | None = None, image: Path | None = None, audio: Path | None = None,
                  video: Path | None = None, filters: Filters | None = None, exclude: Sequence[str] = (), explain: bool | int = False,
                  rerank: bool | None = None, liked: Sequence[str] = (), mentioned: Sequence[str] = (),
                  understand: bool = False) -> dict:
        """JSON-ready recommendations (see the module doc of agent.recommend and README). ``liked``:
        catalog ids a conversation says the person liked, ``mentioned``: every title it named
        (agent.chat.request); pseudo-histories fused with the request's words
        (agent.retrieval.request_fusion). ``understand``: read ``query`` first as the chat reads a
        message (``read_query``; `recommend --query` and ``/v1/recommend``): its titles, facets and
        years join the arguments, the ones given explicitly win. ``explain``: every item (True), none, or
        the first N (an int: the chat explains its top items and lists the rest)."""
        clock = Stopwatch()
        with clock("request"):
            validate(k, explain, filters)
            if understand and query and self.read_query is not None:
                query, filters, exclude, liked, mentioned = with_understood(self.read_query(query), query, filters,
                                                                             exclude, liked, mentioned)
                validate(k, explain, filters)
            dense, ignored = self._history(user, history)
            request = self.request_text(query, image, audio, video)
            self._check_k(k, dense, request, bool(liked or mentioned))
            text = " ".join(request.values())
            part_vectors = self.embedder.embed([text, *request.values()]) if request else None
        titled = bool(liked or mentioned) and image is None and self._collaborative()
        # the reranker learned one-shot requests and watch histories, not conversations about titles
        do_rerank = rerank if rerank is not None else (
            False if titled else self.settings.rerank_requests if request else self.settings.rerank_sequential)
        with clock("retrieve"):
            pool = k + len(set(exclude)) + (self.settings.rerank_depth if do_rerank else 0)
            excluded = {str(i) for i in exclude}
            rows = self._candidates(dense, text, pool, filters, image, liked if titled else (),
                                    mentioned if titled else (), part_vectors[0] if request else None)
            rows = [r for r in rows if r["id"] not in excluded]
        with clock("rerank"):
            if do_rerank and rows:
                # the history exactly as the reranker was trained and evaluated on it
                rows = self._rerank(rows, text, [title_line(self.retriever.item_meta[i])
                                                 for i in dense[-HISTORY_TITLES:]])
        rows = diversify(rows, k, self._vectors([r["id"] for r in rows[:DIVERSITY_POOL]]) if rows else {})
        with clock("evidence"):
            evidences = self._evidence(rows, dense, request, part_vectors[1:] if request else None)
        with clock("explain"):
            explained = evidences[:explained_count(explain, k)]
            explanations = self.explainer.explain(explained) if explained else []
        items = [{**row, "rank": rank, "evidence": ev.to_json(),
                  **(explanations[rank - 1].to_json() if rank <= len(explanations) else NO_EXPLANATION)}
                 for rank, (row, ev) in enumerate(zip(rows, evidences, strict=True), start=1)]
        return {
            "user": None if user is None else str(user), "history_size": len(dense),
            "ignored_history_ids": ignored, "system": self.system if len(dense) else "text-search",
            "request_text": request, "reranked": bool(do_rerank and rows), "items": items,
            "timings": clock.totals(), "notes": self._notes(request, dense),
        }

    def _candidates(self, dense: np.ndarray, text: str, pool: int, filters: Filters | None, image: Path | None,
                    liked: Sequence[str], mentioned: Sequence[str], query_vector: np.ndarray | None) -> list[dict]:
        """One retrieval for every surface: the request as it is read without a user (titles through the
        collaborative models, words through hybrid text search, which reaches items nobody has rated
        yet), and a history as one more input weighted by how specific the request is
        (agent.retrieval.request_weight)."""
        from agent.retrieval.request_weight import (
            content_words,
            fuse_rows,
            request_weight,
        )

        history_rows = self._from_history(dense, pool, filters, query_vector) if len(dense) else []
        if not (text or liked or mentioned or image is not None):
            return history_rows
        if liked or mentioned:
            request_rows = self._from_parts(liked, mentioned, text, pool + len(liked), filters)
        else:
            request_rows = self._from_request(text, pool, filters, photo_vector(self.converter, self.settings, image))
        if not len(dense):
            return request_rows
        seen = {self.retriever.split.item_ids[i] for i in dense}  # the user's own items are never picks
        request_rows = [r for r in request_rows if r["id"] not in seen]
        facets = len(filters.facets) if filters is not None else 0
        bounds = 0 if filters is None else (filters.year_min is not None) + (filters.year_max is not None)
        weight = request_weight(len(set(liked) | set(mentioned)), facets, bounds, content_words(text))
        return fuse_rows(request_rows, history_rows, weight, pool)

    def _collaborative(self) -> bool:
        """Whether titles can steer through the collaborative models: an interactions log and a
        trained retriever (without one, a request's words still go to text search)."""
        from agent.retrieval.retriever import HYBRID_FILE

        return self.project.interactions is not None and (self.retriever.dir / HYBRID_FILE).is_file()

    def _check_k(self, k: int, dense: np.ndarray, request: dict[str, str], titled: bool = False) -> None:
        if len(dense) == 0 and not request and not titled:
            raise InputError("nothing to recommend from: give a user, a history, or a request (query, photo, voice note)")
        catalog = self.retriever.split.n_items if len(dense) else self.store.count()
        if k > catalog:
            raise InputError(f"k={k} is larger than the catalog ({catalog} items): use a smaller k")

    def _notes(self, request: dict[str, str], dense: np.ndarray) -> list[str]:
        if request and len(dense) and self.system != "hybrid":
            return [(f"the {self.system} retriever picks candidates by history alone; the request text only "
                     "reaches the reranker and the explanations (the hybrid retriever also steers candidates by it)")]
        return []

    def item(self, item_id: str) -> dict:
        """One catalog item's facts and card; InputError if the store does not hold it."""
        got = self.store.get([str(item_id)])
        if str(item_id) not in got:
            raise InputError(f"unknown item id {item_id!r}: no such item in the store")
        meta, card = got[str(item_id)]["metadata"], got[str(item_id)]["document"] or ""
        fields = parse_card(card)
        poster = meta.get("image")
        return {
            "id": str(item_id), "title": meta.get("title", fields.get("title", "")), "year": meta.get("year"),
            "facets": _facets_json(meta),
            "tags": _tags(fields),
            "card": card, "poster": poster if poster and Path(poster).exists() else None,
            **({"image_url": meta["image_url"]} if meta.get("image_url") else {}),  # kept, never fetched
        }


NO_EXPLANATION = {"explanation": None, "explanation_status": None, "cites": []}


def _tags(card_fields: dict[str, str]) -> list[str]:
    return [t.strip() for t in card_fields.get("tags", "").split(",") if t.strip()]


def _facets_json(meta: dict) -> dict[str, list[str]]:
    """An item's facets from its stored metadata, as JSON lists."""
    return {name: list(values) for name, values in decode_facets(meta).items()}
