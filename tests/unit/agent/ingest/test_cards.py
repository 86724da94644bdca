from agent.ingest.cards import (
    MAX_FIELD_CHARS,
    build_card,
    build_embedding_text,
    card_fields,
    parse_card,
)
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


CARD = """Title: Heat (1995)
Genres: Action, Crime
Director: Michael Mann
Plot: A group of professional bank robbers start to feel the heat
 from police when they unknowingly leave a clue.
Poster text: HEAT"""


def test_parse_card_reads_labelled_fields_and_continued_lines():
    fields = parse_card(CARD)
    assert list(fields) == ["title", "genres", "director", "plot", "poster_text"]
    assert fields["title"] == "Heat" and fields["poster_text"] == "HEAT"
    assert fields["plot"].endswith("feel the heat from police when they unknowingly leave a clue.")  # continued


def test_card_fields_keep_labels_and_the_title_year():
    fields = card_fields(CARD)
    assert fields["Title"] == "Heat (1995)" and fields["Poster text"] == "HEAT"
    assert card_fields("free text, not a card") == {}


def test_a_rendered_card_parses_back_into_its_facts():
    item = Item(id="1", title="Alien: Resurrection", year=1997, genres=("Sci-Fi",), tags=("ripley", "clones"),
                people={"cast": ("Sigourney Weaver",)}, text={"plot": "Ripley is cloned\n two hundred years later."})
    fields = parse_card(build_card(item, {"transcript": "In space: no one hears"}))
    assert fields == {"title": "Alien: Resurrection", "genres": "Sci-Fi", "cast": "Sigourney Weaver",
                      "tags": "ripley, clones", "plot": "Ripley is cloned two hundred years later.",
                      "audio_transcript": "In space: no one hears"}
