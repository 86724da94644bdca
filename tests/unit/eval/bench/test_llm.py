"""``recsage bench llm`` on a tiny random llama (character tokens): the prompt it times has the
promised length, and one role's row is complete."""

import pytest

from agent.core.config import Settings
from agent.llm import LoadedLlm
from eval.bench.llm import NEW_TOKENS, PROMPT_TOKENS, QUESTION, fit_prompt, measure_role
from tests.fakes.tiny_lm import tiny_llama


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama()


def test_the_prompt_fills_the_budget_and_ends_with_the_question(tiny):
    model, tok = tiny
    prompt, n = fit_prompt(LoadedLlm(model=model, tokenizer=tok), tokens=PROMPT_TOKENS)
    # one token per character, and one per chat token
    assert n == len(prompt.replace("<|im_start|>", "S").replace("<|im_end|>", "E")) <= PROMPT_TOKENS
    assert n > PROMPT_TOKENS - 12  # within one filler word (the longest is 10 characters and a space)
    assert prompt.endswith(QUESTION + "<|im_end|>\n<|im_start|>assistant\n")


def test_one_role_is_measured_end_to_end(tiny, tmp_path):
    model, tok = tiny
    model.save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    settings = Settings(home=tmp_path, threads=1, models={"llm": str(tmp_path / "tiny")})
    row = measure_role(settings, "llm", repeats=2, dtype="fp32")
    assert row["role"] == "llm" and row["dtype"] == "fp32" and row["threads"] == 1
    assert row["prompt_tokens"] <= PROMPT_TOKENS and 0 <= row["new_tokens"] <= NEW_TOKENS
    assert 0 < row["prefill_s"] and 0 < row["load_s"] and row["params_m"] > 0
    assert row["peak_rss_mb"] > row["weights_mb"] > 0
