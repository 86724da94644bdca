"""Evidence: card fields, the most similar history items and the matched request part."""

import numpy as np
import pytest

from agent.explain.evidence import (
    build_evidence,
    display_title,
    parse_card,
    request_matches,
    similar_history,
)

CARD = """Title: Toy Story (1995)
Genres: Adventure, Animation, Children, Comedy, Fantasy
Director: John Lasseter
Cast: Tom Hanks, Tim Allen
Tags: Pixar, fun
Plot: A cowboy doll is profoundly threatened and jealous when a new spaceman figure
supplants him as top toy in a boy's room.
Poster text: ToY STORY"""


def test_parse_card_reads_labelled_fields_and_continued_lines():
    fields = parse_card(CARD)
    assert fields["title"] == "Toy Story"
    assert fields["genres"].startswith("Adventure, Animation")
    assert fields["poster_text"] == "ToY STORY"
    assert fields["plot"].endswith("top toy in a boy's room.")  # the continued line belongs to the plot


@pytest.mark.parametrize("raw, shown", [("Matrix, The", "The Matrix"), ("Toy Story", "Toy Story"),
                                        ("Usual Suspects, The", "The Usual Suspects")])
def test_display_title_moves_the_article_back(raw, shown):
    assert display_title(raw) == shown


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
