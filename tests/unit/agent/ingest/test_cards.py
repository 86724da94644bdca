from agent.ingest.cards import (
    MAX_FIELD_CHARS,
    build_card,
    build_embedding_text,
    card_fields,
    facet_label,
    parse_card,
)
from agent.ingest.catalog import Item


def test_card_has_facts_in_stable_order():
    item = Item(id="1", title="Toy Story", year=1995, facets={"genres": ("Animation", "Comedy")}, tags=("pixar",),
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
    item = Item(id="1", title="Toy Story", facets={"genres": ("Animation",)}, people={"cast": ("Tom Hanks",)},
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
    item = Item(id="1", title="Alien: Resurrection", year=1997, facets={"genres": ("Sci-Fi",)}, tags=("ripley", "clones"),
                people={"cast": ("Sigourney Weaver",)}, text={"plot": "Ripley is cloned\n two hundred years later."})
    fields = parse_card(build_card(item, {"transcript": "In space: no one hears"}))
    assert fields == {"title": "Alien: Resurrection", "genres": "Sci-Fi", "cast": "Sigourney Weaver",
                      "tags": "ripley, clones", "plot": "Ripley is cloned two hundred years later.",
                      "audio_transcript": "In space: no one hears"}


def test_a_movielens_card_is_byte_identical_to_the_genres_era_card():
    # The card's hash decides re-ingestion: a MovieLens item must render exactly as before facets.
    item = Item(id="6", title="Heat", year=1995, facets={"genres": ("Action", "Crime", "Thriller")},
                tags=("bank robbery", "Al Pacino"),
                people={"director": ("Michael Mann",), "writer": ("Michael Mann",),
                        "cast": ("Al Pacino", "Robert De Niro", "Val Kilmer", "Jon Voight", "Tom Sizemore", "Ashley Judd")},
                text={"plot": "A group of  professional bank robbers\nfeel the heat."})
    assert build_card(item, {"caption": "a man with a gun", "poster_text": "HEAT"}) == (
        "Title: Heat (1995)\n"
        "Genres: Action, Crime, Thriller\n"
        "Director: Michael Mann\n"
        "Writer: Michael Mann\n"
        "Cast: Al Pacino, Robert De Niro, Val Kilmer, Jon Voight, Tom Sizemore\n"
        "Tags: bank robbery, Al Pacino\n"
        "Plot: A group of professional bank robbers feel the heat.\n"
        "Poster text: HEAT\n"
        "Image: a man with a gun"
    )
    assert build_embedding_text(item, {"caption": "a man with a gun", "poster_text": "HEAT"}) == (
        "Title: Heat (1995)\nGenres: Action, Crime, Thriller\nTags: bank robbery, Al Pacino\n"
        "Plot: A group of professional bank robbers feel the heat.\nImage: a man with a gun"
    )


def test_every_facet_renders_as_one_labelled_line_where_genres_were():
    item = Item(id="s1", title="Trail Runner", facets={"category": ("Running Shoes",), "brand": ("Acme",),
                                                       "shoe_width": ("Wide", "Narrow")},
                people={"designer": ("Ada",)}, tags=("trail",), text={"description": "Grippy."})
    assert build_card(item).splitlines() == [
        "Title: Trail Runner",
        "Category: Running Shoes",
        "Brand: Acme",
        "Shoe width: Wide, Narrow",
        "Designer: Ada",
        "Tags: trail",
        "Description: Grippy.",
    ]
    assert parse_card(build_card(item))["shoe_width"] == "Wide, Narrow"


def test_facet_labels_are_read_back_as_card_fields():
    assert facet_label("genres") == "Genres" and facet_label("shoe_width") == "Shoe width"
    assert facet_label("product-type2") == "Product type"  # a digit or dash would end the field pattern
    item = Item(id="s", title="T", facets={"product-type2": ("Boots",)}, tags=("x",))
    assert parse_card(build_card(item)) == {"title": "T", "product_type": "Boots", "tags": "x"}
