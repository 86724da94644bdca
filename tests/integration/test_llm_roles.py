"""The optional Qwen LLM roles on their real weights: a task mapped to one loads it and it follows an
instruction; its chat template is the one the LoRA rows and every prompt are written in.

The Qwen roles are pulled only by name (`recsage models pull --role llm_qwen05`), never by default or
in CI, so these tests skip with that command when the role is absent.
"""

from __future__ import annotations

import json

import pytest

from agent.core.config import load_settings
from agent.core.errors import ModelNotReady
from agent.provision.models import llm_for, model_path, verify_role

QWEN_ROLES = ("llm_qwen05", "llm_qwen15")


def _provisioned(role: str):
    settings = load_settings(threads=2)
    ok, detail = verify_role(settings, role)
    if not ok and not settings.model_override(role):
        pytest.skip(f"{role} is optional and not provisioned ({detail})")
    return settings


@pytest.mark.integration
@pytest.mark.parametrize("role", QWEN_ROLES)
def test_a_task_mapped_to_a_qwen_role_loads_it_and_follows_a_json_instruction(role):
    settings = _provisioned(role).with_overrides(task_models={"understand": role})
    llm = llm_for(settings, "understand")
    assert type(llm.model).__name__ == "Qwen2ForCausalLM"
    assert llm.tokenizer.eos_token == "<|im_end|>"  # generation stops at the end of the turn
    prompt = llm.chat("Extract the movie the user mentions. Answer with JSON only: {\"title\": ..., \"year\": ...}",
                      "Hi, I am looking for something like Super Troopers (2001), we loved it.")
    (answer,) = llm.generate([prompt], max_new_tokens=32, stop=("}",))
    data = json.loads(answer.removeprefix("```json").strip() + "}")
    assert data["title"] == "Super Troopers" and int(data["year"]) == 2001


@pytest.mark.integration
@pytest.mark.parametrize("role", QWEN_ROLES)
def test_qwen_chat_prompts_match_the_llm_roles_chatml(role):
    """Prompts and LoRA rows are formatted with chat_prompt (system + user turn): ChatML in every
    LLM role, so a row written for one base reads the same to the other (no default system prompt
    slips in, since every prompt has its own)."""
    settings = _provisioned(role)
    try:
        model_path(settings, "llm")
    except ModelNotReady as exc:
        pytest.fail(f"integration test needs the provisioned llm: {exc}")
    qwen = llm_for(settings.with_overrides(task_models={"explain": role}), "explain")
    small = llm_for(settings, "explain")
    expected = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    assert qwen.chat("S", "U") == small.chat("S", "U") == expected
    # the chat tokens are single tokens in both vocabularies, and no BOS is prepended to a row
    for llm in (qwen, small):
        ids = llm.tokenizer(expected, add_special_tokens=True)["input_ids"]
        assert llm.tokenizer.convert_ids_to_tokens(ids[0]) == "<|im_start|>"
