"""The project file: written back as TOML it reads the same; messages name the project as a command line does."""

from pathlib import Path

import pytest

from agent.core.errors import InputError
from agent.core.project import (
    MOVIE_WORDS,
    NEUTRAL_WORDS,
    CatalogSource,
    CatalogWords,
    Project,
    StoreTarget,
    indefinite_article,
    movielens_project,
    project_toml,
    read_project,
    toml_value,
)


def test_toml_values_are_quoted_escaped_and_typed():
    assert toml_value('say "hi"\\now') == '"say \\"hi\\"\\\\now"'
    assert toml_value(["a", "b"]) == '["a", "b"]'
    assert (toml_value(True), toml_value(5), toml_value(4.0)) == ("true", "5", "4.0")


def test_project_toml_reads_back_with_paths_relative_to_the_file(tmp_path):
    data = tmp_path / "data"
    project = Project(
        catalog=CatalogSource(path=data / "shop.jsonl", id="sku", facets=["category", "brand"], date="released"),
        interactions=None,
        store=StoreTarget(url="http://127.0.0.1:8000", artifacts=tmp_path / "artifacts"),
    )
    text = project_toml(project, tmp_path)
    assert 'path = "data/shop.jsonl"' in text and 'artifacts = "artifacts"' in text  # portable: relative
    assert "[interactions]" not in text
    (tmp_path / "sub").mkdir()
    moved = tmp_path / "sub" / "recsage.toml"  # read from another folder, the relative paths move with it
    moved.write_text(text)
    again = read_project(moved)
    assert again.catalog.path == tmp_path / "sub" / "data" / "shop.jsonl"
    assert again.catalog.facets == ["category", "brand"] and again.catalog.date == "released"
    assert again.store.url == "http://127.0.0.1:8000" and again.interactions is None


def test_movielens_mapping_round_trips(tmp_path):
    project = movielens_project(tmp_path / "ml", store=tmp_path / "store", posters=tmp_path / "posters")
    file = tmp_path / "recsage.toml"
    file.write_text(project_toml(project))
    again = read_project(file)
    assert again.model_dump(exclude={"source"}) == project.model_dump(exclude={"source"})
    assert again.store.artifacts_dir == tmp_path / "store"  # default artefacts: the store folder


def test_command_args_name_the_project_as_a_command_line_does(tmp_path, monkeypatch):
    ml = movielens_project(Path("/d/ml"), store=Path("/s"))
    assert ml.command_args() == "--movielens /d/ml --store /s"
    served = movielens_project(Path("/d/ml"), url="http://h:1", artifacts=Path("/a"))
    assert served.command_args() == "--movielens /d/ml --chroma-url http://h:1 --artifacts /a"
    file = tmp_path / "p.toml"
    file.write_text(project_toml(ml))
    assert read_project(file).command("ingest") == f"recsage ingest --project {file}"
    local = tmp_path / "recsage.toml"
    local.write_text(project_toml(ml))
    monkeypatch.chdir(tmp_path)
    assert read_project(local).command("ingest") == "recsage ingest"  # every command finds ./recsage.toml


def test_an_interactions_free_project_says_what_needs_one():
    project = Project(catalog=CatalogSource(path=Path("c.jsonl")), store=StoreTarget(path=Path("s")), source="p.toml")
    with pytest.raises(InputError, match=r"p.toml has no \[interactions\]"):
        project.require_interactions()


# --- the catalog's words ----------------------------------------------------------------------------


def test_movielens_says_the_movie_words_and_any_other_catalog_neutral_ones(tmp_path):
    movielens = movielens_project(tmp_path / "ml", store=tmp_path / "store").words
    assert (movielens.noun, movielens.nouns, movielens.verb, movielens.audience) == ("movie", "movies", "watched", "viewer")
    assert movielens.user_label == "MovieLens user" and movielens.movie_examples
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "movies.csv").write_text("movieId,title,genres\n")
    assert CatalogWords.for_catalog(CatalogSource(path=tmp_path / "folder")) == MOVIE_WORDS  # format auto
    neutral = CatalogWords.for_catalog(CatalogSource(path=tmp_path / "shop.jsonl"))
    assert (neutral.noun, neutral.nouns, neutral.verb, neutral.audience) == ("item", "items", "interacted with", "user")
    assert neutral.user_label == "user" and not neutral.movie_examples


def test_the_project_file_names_its_own_words_and_reads_them_back(tmp_path):
    (tmp_path / "recsage.toml").write_text(
        '[catalog]\npath = "shop.jsonl"\nnoun = "product"\nverb = "bought"\naudience = "shopper"\n'
        '[store]\npath = "store"\n')
    project = read_project(tmp_path / "recsage.toml")
    words = project.words
    assert (words.noun, words.nouns, words.verb, words.audience) == ("product", "products", "bought", "shopper")
    assert (words.Noun, words.Nouns, words.Verb, words.a_noun, words.a_audience) == (
        "Product", "Products", "Bought", "a product", "a shopper")
    assert words.vocabulary == {"product", "products", "bought", "shopper"}
    assert read_project(_written(tmp_path, project)).words == words
    assert "noun" not in project_toml(movielens_project(tmp_path, store=tmp_path / "s"))  # unset: not written


def _written(tmp_path, project) -> Path:
    path = tmp_path / "again" / "recsage.toml"
    path.parent.mkdir()
    path.write_text(project_toml(project))
    return path


def test_a_plural_set_apart_and_a_capital_inside_a_word_are_kept(tmp_path):
    words = CatalogWords.for_catalog(CatalogSource(path=tmp_path / "c.csv", noun="TV series", nouns="TV series",
                                                   verb="listened to"))
    assert (words.nouns, words.Noun, words.Verb, words.audience) == ("TV series", "TV series", "Listened to", "user")
    assert words.vocabulary == {"tv", "series", "listened", "to", "user"}


def test_the_article_goes_by_the_sound_of_the_word():
    assert [indefinite_article(w) for w in ("item", "episode", "user", "unit", "umbrella", "product", "album")] == [
        "an", "an", "a", "a", "an", "a", "an"]


def test_a_catalog_whose_format_cannot_be_told_says_the_neutral_words(tmp_path):
    source = CatalogSource(path=tmp_path / "gone")  # a MovieLens folder that moved: no suffix, no movies.csv
    with pytest.raises(InputError):
        source.resolved_format()
    assert CatalogWords.for_catalog(source) == NEUTRAL_WORDS
