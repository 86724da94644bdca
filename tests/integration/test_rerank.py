"""The shipped LoRA reranker on the real SmolLM2: small, loads, and reads the request."""

from __future__ import annotations

import pytest

from agent.core.config import REPO_ADAPTER

CARDS = {
    "toy": "Title: Toy Story (1995)\nGenres: Adventure, Animation, Children, Comedy, Fantasy\nTags: Pixar, fun\n"
           "Plot: A cowboy doll is profoundly threatened and jealous when a new spaceman figure supplants him "
           "as top toy in a boy's room.",
    "war": "Title: Saving Private Ryan (1998)\nGenres: Action, Drama, War\nTags: World War II, violence\n"
           "Plot: Following the Normandy Landings, a group of U.S. soldiers go behind enemy lines to retrieve "
           "a paratrooper whose brothers have been killed in action.",
    "horror": "Title: Shining, The (1980)\nGenres: Horror\nTags: Stanley Kubrick, creepy, psychological\n"
              "Plot: A family heads to an isolated hotel for the winter where a sinister presence influences "
              "the father into violence.",
}


def test_shipped_adapter_is_small_and_complete():
    weights = REPO_ADAPTER / "adapter_model.safetensors"
    assert (REPO_ADAPTER / "adapter_config.json").is_file() and weights.is_file()
    assert weights.stat().st_size < 5_000_000


REQUESTS = {
    "toy": "a funny animated movie for kids about toys",
    "war": "a gritty World War II combat film",
    "horror": "a scary psychological horror movie in a hotel",
}


@pytest.mark.integration
def test_lora_reranker_scores_each_movie_highest_for_its_own_request(real_settings):
    """A 135M judge carries an item prior (Toy Story reads as a "yes" to most requests), so the
    request's effect is what is checked: each card scores higher under the request it matches than
    under the others, in the product path (bf16 weights where native, packed candidates) and in the
    naive fp32 baseline, which agree."""
    from agent.rerank.reranker import load_reranker

    reranker, baseline = load_reranker(real_settings), load_reranker(real_settings, dtype="fp32")
    cards = list(CARDS.values())
    fast = {name: reranker.pointwise_scores(text, cards) for name, text in REQUESTS.items()}
    naive = {name: baseline.pointwise_scores_naive(text, cards) for name, text in REQUESTS.items()}
    for j, card_name in enumerate(CARDS):
        for scores in (fast, naive):
            assert max(REQUESTS, key=lambda r: scores[r][j]) == card_name, scores
    for name in REQUESTS:
        assert fast[name] == pytest.approx(naive[name], abs=0.1)
