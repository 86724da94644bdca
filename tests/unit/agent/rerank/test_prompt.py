"""What the reranker reads of a card: the compact view and the fenced, truncated text."""

from __future__ import annotations

from agent.rerank.prompt import fence_text, rerank_view


def test_rerank_view_keeps_title_facts_and_drops_people():
    card = ("Title: Toy Story (1995)\nGenres: Animation, Comedy\nDirector: John Lasseter\n"
            "Cast: Tom Hanks\nTags: Pixar, fun\nPlot: A cowboy doll is jealous.\nPoster text: ToY STORY")
    assert rerank_view(card) == "Toy Story (1995) | Animation, Comedy | Pixar, fun | A cowboy doll is jealous."
    assert rerank_view("free text, not a card") == "free text, not a card"


def test_rerank_view_of_a_shop_card_reads_its_facets_and_description():
    card = ("Title: Trail Runner\nCategory: Running Shoes\nBrand: Acme\nDesigner: Ada\nTags: grippy\n"
            "Description: Deep lugs.\nPoster text: TRAIL\nImage: a blue shoe")
    assert rerank_view(card) == "Trail Runner | Running Shoes | Acme | Ada | Deep lugs. | grippy | a blue shoe"


def test_cards_are_truncated():
    text = "Title: Long\nPlot: " + " ".join(["word"] * 200)
    fenced = fence_text(text, 100)
    assert len(fenced) <= 103 and fenced.endswith("...")
    assert fence_text("short", 100) == "short"
