"""The word constraint on explanation decoding: which words an item allows, and that the decoder
can never write a word outside them (a tiny random model, which left alone writes anything)."""

import re

import pytest

from agent.core.text import words
from agent.explain.constrain import WordConstraint, batch_constraint, vocabulary, word_forms
from agent.explain.evidence import CoLink
from agent.explain.generate import explanation_prompt
from tests.fakes.evidence import CARD, toy_story_evidence


def test_an_items_words_come_from_its_own_evidence_and_the_connectives():
    evidence = toy_story_evidence(CARD.replace("Tags: Pixar, sequel", "Tags: Pixar, sequel, classic"),
                                  request="a war movie with great toys")
    evidence.co = CoLink("1", "Toy Story", 1995, 42)
    forms = word_forms(evidence)
    # the card (plot, cast, tags), the year, the link's count, a word the genres imply, connectives
    assert {"Woody", "woody", "collector", "Pixar", "Hanks", "1999", "42", "funny", "because", "with"} <= forms
    # the history title names another film; the request is what the viewer wants, not what the item is
    assert "matrix" not in forms and "Matrix" not in forms and "1995" not in forms
    assert "war" not in forms  # a genre claim the card lacks
    assert "sequel" in forms and "classic" not in forms  # a tag, but "a classic" would be empty praise
    assert "film" not in forms and "movie" not in forms  # filler the writer pads with


def _constraint(evidence, prefix="Toy Story 2 is an animated comedy that"):
    from tests.fakes.tiny_lm import tiny_llama

    _, tok = tiny_llama()
    return tok, WordConstraint(vocabulary(tok), word_forms(evidence), words(prefix))


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_a_content_word_is_written_once_and_the_start_cannot_end_at_once():
    evidence = toy_story_evidence()
    tok, row = _constraint(evidence)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    assert end not in row.allowed([])  # an empty continuation is no explanation
    written = _ids(tok, " pixar")
    assert end in row.allowed(written)  # a fact may end the sentence
    assert _ids(tok, "x")[0] not in row.allowed(written + _ids(tok, " pi"))  # "pixar" twice is a tautology
    # "comedy" was said in the start: it cannot be written again either
    assert _ids(tok, "y")[0] not in row.allowed(_ids(tok, " comed"))


def test_no_word_trigram_repeats_and_no_clause_ends_on_an_article():
    tok, row = _constraint(toy_story_evidence(), prefix="Toy Story 2 is a pick")
    assert tok.convert_tokens_to_ids("<|im_end|>") not in row.allowed(_ids(tok, " with a toy collector and a"))
    s = _ids(tok, "s")[0]
    tok, row = _constraint(toy_story_evidence(), prefix="Toy Story 2 is a pick")
    assert s in row.allowed(_ids(tok, " and of hi"))  # "his" may follow "and of" once...
    tok, row = _constraint(toy_story_evidence(), prefix="Toy Story 2 is a pick")
    assert s not in row.allowed(_ids(tok, " and of his woody and of hi"))  # ...not twice (a loop)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_tiny_random_model_writes_only_allowed_words_under_the_constraint(seed):
    import torch

    from agent.llm import LoadedLlm
    from tests.fakes.tiny_lm import tiny_llama

    from tokenizers import decoders

    model, tok = tiny_llama()
    tok.backend_tokenizer.decoder = decoders.Fuse()  # characters back to text without spaces between
    torch.manual_seed(seed)
    with torch.no_grad():  # another random model: the constraint, not the weights, must do the work
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    llm = LoadedLlm(model=model, tokenizer=tok)
    evidences = [toy_story_evidence(), toy_story_evidence(request="funny toys")]
    pairs = [explanation_prompt(llm, e) for e in evidences]
    prompts, prefixes = [p for p, _ in pairs], [prefix for _, prefix in pairs]
    free = llm.generate(prompts, max_new_tokens=40, stop=())
    allowed = [{f for f in word_forms(e)} for e in evidences]
    assert any(w not in forms for text, forms in zip(free, allowed) for w in re.findall(r"[A-Za-z0-9]+", text))
    constrained = llm.generate(prompts, max_new_tokens=40, stop=(),
                               allowed_tokens=batch_constraint(tok, evidences, prefixes))
    for text, forms in zip(constrained, allowed):
        assert re.search(r"[A-Za-z0-9]", text), text
        written = re.findall(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", text)
        assert all(w in forms for w in written), (text, [w for w in written if w not in forms])
