from agent.explain.check import check
from agent.explain.evidence import CoLink, Evidence
from agent.explain.grounding import grounding_problems, stem


def heat(**kwargs) -> Evidence:
    card = {"genres": "Action, Crime, Thriller", "tags": "heist, bank robbery", "cast": "Al Pacino, Robert De Niro"}
    return Evidence("6", "Heat", 1995, card, facets=("genres",), co=CoLink("2490", "Ronin", 1998, 41), **kwargs)


def test_grounded_sentences_pass():
    assert check("41 people who watched Ronin also watched Heat (1995), a crime thriller about a bank robbery.",
                 heat()).ok
    assert check("Because you watched Ronin, you may enjoy Heat, a heist thriller starring Al Pacino.", heat()).ok


def test_a_descriptive_word_no_evidence_supports_is_rejected():
    verdict = check("Heat is a crime thriller that explores the human condition.", heat())
    assert not verdict.ok and "words no evidence supports: human, condition" in verdict.problems


def test_a_word_said_twice_is_a_tautology():
    evidence = Evidence("1", "Beetlejuice", 1988, {"genres": "Comedy, Fantasy", "tags": "humor"}, facets=("genres",))
    verdict = check("Beetlejuice is a fantasy comedy that combines humor with a touch of humor.", evidence)
    assert "says a word twice: humor" in verdict.problems
    assert grounding_problems("combines horror horror", "horror combines") == ["says a word twice: horror"]


def test_empty_praise_is_rejected_unless_the_evidence_says_it():
    assert "empty praise: great story" in grounding_problems("a crime film with a great story", "crime story great")
    assert grounding_problems("a masterpiece", "tags: masterpiece") == []


def test_stems_match_inflections():
    assert stem("comedies") == stem("comedy") and stem("animated")[:5] == stem("animation")[:5]
    assert stem("robberies") == stem("robbery")


def test_popularity_is_a_claim_that_needs_evidence():
    verdict = check("41 people who watched Ronin also watched Heat (1995), a crime thriller that has been a "
                    "favorite of many fans.", heat())
    assert "words no evidence supports: favorite, fans" in verdict.problems
