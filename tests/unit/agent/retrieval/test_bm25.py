"""BM25 against scores worked out by hand on a three-document corpus."""

from __future__ import annotations

import math

import pytest

from agent.ingest.catalog import Item
from agent.retrieval.bm25 import Bm25Index, bm25_ranker, catalog_bm25_docs, tokenize

# d1 has 3 tokens, d2 has 2, d3 has 4: N = 3, avgdl = 3, k1 = 1.2, b = 0.75
DOCS = {"d1": "apple banana apple", "d2": "banana cherry", "d3": "cherry date fig egg"}


def test_single_term_score_by_hand():
    # apple: df 1 -> idf = ln(1 + (3 - 1 + 0.5) / (1 + 0.5)) = ln(8/3)
    # d1: tf 2, |d| = avgdl -> length norm 1.2 -> 2 * 2.2 / (2 + 1.2)
    index = Bm25Index(DOCS)
    assert index.search("apple", 10) == [("d1", pytest.approx(math.log(8 / 3) * 4.4 / 3.2))]


def test_two_term_scores_and_order_by_hand():
    # banana and cherry both have df 2 -> idf = ln(1 + 1.5 / 2.5) = ln(1.6)
    # d1 (|d| 3): norm 1.2            banana tf 1 -> 2.2 / 2.2
    # d2 (|d| 2): norm 1.2 * 0.75 = 0.9  banana, cherry tf 1 -> 2.2 / 1.9 each
    # d3 (|d| 4): norm 1.2 * 1.25 = 1.5  cherry tf 1 -> 2.2 / 2.5
    idf = math.log(1.6)
    hits = Bm25Index(DOCS).search("banana cherry", 10)
    assert [doc for doc, _ in hits] == ["d2", "d1", "d3"]
    assert [score for _, score in hits] == pytest.approx([2 * idf * 2.2 / 1.9, idf * 1.0, idf * 2.2 / 2.5])


def test_k1_and_b_are_used():
    # b = 0 removes length normalisation: d2 and d3 then score cherry alike (tie broken by id)
    hits = Bm25Index(DOCS, k1=1.2, b=0.0).search("cherry", 10)
    assert hits[0][1] == pytest.approx(hits[1][1])
    assert [doc for doc, _ in hits] == ["d2", "d3"]


def test_repeated_query_terms_count_once_and_unknown_terms_add_nothing():
    index = Bm25Index(DOCS)
    assert index.search("apple apple zebra", 10) == index.search("apple", 10)


def test_documents_without_a_shared_term_are_left_out_and_k_limits():
    index = Bm25Index(DOCS)
    assert index.search("zebra", 10) == []
    assert [doc for doc, _ in index.search("banana cherry", 2)] == ["d2", "d1"]
    with pytest.raises(ValueError):
        index.search("apple", 0)


def test_common_terms_never_score_negative():
    docs = {f"d{i}": "drama" for i in range(5)} | {"x": "comedy"}
    hits = Bm25Index(docs).search("drama", 10)
    assert len(hits) == 5 and all(score > 0 for _, score in hits)


def test_empty_corpus_is_refused():
    with pytest.raises(ValueError):
        Bm25Index({})


def test_tokenizer_folds_case_accents_punctuation_and_stopwords():
    assert tokenize("A Sci-Fi film about DREAMS, in Cité!") == ["sci", "fi", "dreams", "cite"]


def test_catalog_docs_use_title_facets_and_tags_not_plot():
    item = Item(id="1", title="Toy Story", year=1995, facets={"genres": ("Animation", "Children")},
                tags=("pixar", "fun"), text={"plot": "A cowboy doll is jealous."})
    docs = catalog_bm25_docs([item])
    assert docs["1"] == "Toy Story Animation Children pixar fun"  # a movie's document as before facets
    shoe = Item(id="s", title="Trail Runner", facets={"category": ("Running Shoes",), "brand": ("Acme",)})
    assert catalog_bm25_docs([shoe])["s"] == "Trail Runner Running Shoes Acme"
    rank = bm25_ranker([item, Item(id="2", title="Heat", facets={"genres": ("Crime",)})])
    assert rank("pixar animation") == ["1"]
    assert rank("cowboy doll") == []
