"""Evidence: card fields, the most similar history items and the matched request part."""

import numpy as np
import pytest

from agent.explain.evidence import (
    build_evidence,
    request_matches,
    similar_history,
)
from agent.ingest.cards import parse_card

CARD = """Title: Toy Story (1995)
Genres: Adventure, Animation, Children, Comedy, Fantasy
Director: John Lasseter
Cast: Tom Hanks, Tim Allen
Tags: Pixar, fun
Plot: A cowboy doll is profoundly threatened and jealous when a new spaceman figure
supplants him as top toy in a boy's room.
Poster text: ToY STORY"""


def test_similar_history_orders_by_cosine_and_reports_it():
    item = np.array([1.0, 0.0])
    vectors = np.array([[0.0, 1.0], [1.0, 0.1], [1.0, 1.0]])
    history = [("a", "A", 1990), ("b", "B", 1991), ("c", "C", None)]
    links = similar_history(item, vectors, history, n=2)
    assert [(link.ref, link.id) for link in links] == [("h1", "b"), ("h2", "c")]
    assert links[0].similarity > links[1].similarity
    assert links[1].similarity == pytest.approx(1 / np.sqrt(2), abs=1e-3)


def test_request_matches_pick_the_closest_part_and_shared_words():
    card = parse_card(CARD)
    item = np.array([1.0, 0.0, 0.0])
    parts = {"query": "a cowboy doll", "photo_text": "STAR WARS"}
    matches = request_matches(card, item, parts, np.array([[0.9, 0.1, 0.0], [0.0, 1.0, 0.0]]))
    by_ref = {m.ref: m for m in matches}
    assert by_ref["query"].matched_words == ["cowboy", "doll"]
    assert by_ref["photo_text"].matched_words == []
    assert by_ref["query"].similarity > by_ref["photo_text"].similarity


def test_build_evidence_gives_every_piece_a_citable_id():
    evidence = build_evidence(
        "1", CARD, {"title": "Toy Story", "year": 1995}, np.array([1.0, 0.0]),
        history=[("2", "Bug's Life, A", 1998)], history_vectors=np.array([[1.0, 0.2]]),
        request_parts={"transcript": "funny toys"}, part_vectors=np.array([[1.0, 0.0]]),
    )
    pieces = evidence.pieces()
    assert {"title", "h1", "genres", "tags", "director", "cast", "plot", "poster_text", "transcript"} <= set(pieces)
    assert "A Bug's Life" in pieces["h1"] and "1995" in pieces["title"]
    data = evidence.to_json()
    assert data["matched_request_part"] == "transcript"
    assert data["history"][0]["id"] == "2" and 0 < data["history"][0]["similarity"] <= 1
    assert "title" not in {c["ref"] for c in data["card"]}


def test_no_history_and_no_request_gives_card_evidence_only():
    evidence = build_evidence("1", CARD, {"title": "Toy Story", "year": 1995}, None)
    assert evidence.history == [] and evidence.request == [] and evidence.matched_request is None
    assert evidence.card["director"] == "John Lasseter"


def test_saved_evidence_keeps_the_catalogs_words_so_a_recheck_accepts_them():
    """`bench recommend` re-checks explanations from saved JSON: a shop's "bought" must still be its word."""
    from agent.core.project import MOVIE_WORDS, CatalogWords
    from agent.explain.check import check
    from agent.explain.evidence import CoLink, Evidence

    shop = CatalogWords("product", "products", "bought", "shopper")
    evidence = build_evidence("1", "Title: Trail Shoe\nCategory: Running", {"title": "Trail Shoe"}, None,
                              co=CoLink(id="2", title="Road Shoe", year=None, count=12), words=shop)
    text = "12 people who bought Road Shoe also bought Trail Shoe."
    assert check(text, evidence).ok
    again = Evidence.from_json("1", evidence.to_json())
    assert again.words == shop and check(text, again).ok
    old = {k: v for k, v in evidence.to_json().items() if k != "words"}  # JSON saved before the words
    assert Evidence.from_json("1", old).words == MOVIE_WORDS
