"""Diversity re-ranking (agent/retrieval/diversity.py): franchise cap and MMR."""

import numpy as np

from agent.retrieval.diversity import diversify, intra_list_similarity, series_stem


def test_series_stems():
    assert series_stem("Friday the 13th Part 2 (1981)") == "friday the 13th"
    assert series_stem("Friday the 13th Part VII: The New Blood (1988)") == "friday the 13th"
    assert series_stem("Friday the 13th (1980)") == "friday the 13th"
    assert series_stem("Nightmare on Elm Street 3: Dream Warriors, A (1987)") == "nightmare on elm street"
    assert series_stem("Halloween II (1981)") == "halloween"
    assert series_stem("Se7en (1995)") == "se7en"


def test_at_most_two_of_one_franchise():
    rows = [{"id": str(n), "title": f"Friday the 13th Part {n}"} for n in range(2, 8)]
    rows += [{"id": "a", "title": "Poltergeist"}, {"id": "b", "title": "The Thing"}]
    out = [r["id"] for r in diversify(rows, 4, lam=1.0)]
    assert out == ["2", "3", "a", "b"]


def test_the_cap_gives_way_when_nothing_else_is_left():
    rows = [{"id": str(n), "title": f"Scream {n}"} for n in range(1, 4)]
    assert len(diversify(rows, 3)) == 3


def test_mmr_moves_a_near_duplicate_down():
    rows = [{"id": i, "title": t} for i, t in (("a", "A"), ("b", "B"), ("c", "C"))]
    vectors = {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])}
    # relevance 1, 2/3, 1/3: with lam .5, b scores .5*.67-.5*1 < c's .5*.33-0
    assert [r["id"] for r in diversify(rows, 3, vectors, lam=0.5)] == ["a", "c", "b"]


def test_intra_list_similarity():
    assert intra_list_similarity([np.array([1.0, 0.0]), np.array([0.0, 1.0])]) == 0.0
    assert abs(intra_list_similarity([np.array([1.0, 0.0]), np.array([2.0, 0.0])]) - 1.0) < 1e-9
