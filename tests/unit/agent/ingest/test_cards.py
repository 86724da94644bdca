from agent.ingest.cards import MAX_FIELD_CHARS, build_card, build_embedding_text
from agent.ingest.catalog import Item


def test_card_has_facts_in_stable_order():
    item = Item(id="1", title="Toy Story", year=1995, genres=("Animation", "Comedy"), tags=("pixar",),
                people={"director": ("John Lasseter",)}, text={"plot": "Toys come to life."})
    card = build_card(item, {"transcript": "hello", "poster_text": "TOY STORY"})
    assert card.splitlines() == [
        "Title: Toy Story (1995)",
        "Genres: Animation, Comedy",
        "Director: John Lasseter",
        "Tags: pixar",
        "Plot: Toys come to life.",
        "Poster text: TOY STORY",
        "Audio transcript: hello",
    ]
    assert build_card(item, {"poster_text": "TOY STORY", "transcript": "hello"}) == card


def test_card_is_short_and_skips_empty_fields():
    long_plot = "word " * 500
    item = Item(id="2", title="Long", text={"plot": long_plot}, people={"cast": tuple(f"A{i}" for i in range(20))})
    card = build_card(item, {"poster_text": "  "})
    plot_line = next(line for line in card.splitlines() if line.startswith("Plot: "))
    assert len(plot_line) <= len("Plot: ") + MAX_FIELD_CHARS
    assert plot_line.endswith("…")
    assert "Poster text" not in card and "Genres" not in card
    assert "A4" in card and "A5" not in card  # cast capped at five names


def test_embedding_text_leaves_out_people_and_poster_ocr():
    item = Item(id="1", title="Toy Story", genres=("Animation",), people={"cast": ("Tom Hanks",)},
                text={"plot": "Toys come to life."})
    text = build_embedding_text(item, {"poster_text": "ToY STORY", "transcript": "a song"})
    assert "Tom Hanks" not in text and "ToY STORY" not in text
    assert "Toys come to life." in text and "Audio transcript: a song" in text
