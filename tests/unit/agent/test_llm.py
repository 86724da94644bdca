"""The one causal-LM runtime on a tiny random llama: loading (safetensors only, adapter merged),
the chat template, prefix-cached continuation scoring against the plain run, batched generation."""

from __future__ import annotations

import pytest
import torch

from agent.core.errors import InputError
from agent.llm import (
    MIN_SHARED_PREFIX,
    LoadedLlm,
    chat_prompt,
    continuation_logprobs,
    load_causal_lm,
    resolve_dtype,
    shared_prefix,
)
from tests.fakes.tiny_lm import plain_option_logprobs, tiny_llama


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama()


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    model, tok = tiny
    folder = tmp_path_factory.mktemp("tiny-llm")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_continuation_scores_over_a_cached_prefix_match_the_plain_run(tiny):
    """Options of different lengths (right-padded after the cached prompt) score as if each ran
    alone after the whole prompt."""
    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok)
    prompt = chat_prompt(tok, "Pick one tool.", "show me something funny")
    options = ["recommend", "search_catalog", "item_details", "x"]
    cached = continuation_logprobs(llm, prompt, options)
    plain = plain_option_logprobs(llm, prompt, options)
    assert len({round(x, 3) for x in plain}) == len(options)
    assert cached == pytest.approx(plain, abs=1e-4)
    assert continuation_logprobs(llm, prompt, options) == pytest.approx(cached, abs=1e-5)  # from the prefix cache


def test_a_prompt_starting_like_an_earlier_one_reads_only_its_own_tokens(tiny):
    """The tool chooser's case: the same long system prompt, another message. The second call reuses
    the first one's key/value cache up to where the prompts part, and still scores as a plain run."""
    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok)
    system = "Pick one tool for the message: recommend, search_catalog or item_details. Answer with its name."
    first, second = (chat_prompt(tok, system, m) for m in ("show me something funny", "who stars in Heat?"))
    options = ["recommend", "search_catalog", "item_details"]
    continuation_logprobs(llm, first, options)
    assert llm.prefixes.stats["hits"] == 0
    scores = continuation_logprobs(llm, second, options)
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in (first, second)]
    common = next(i for i, (a, b) in enumerate(zip(*ids)) if a != b)
    assert llm.prefixes.stats["hits"] == 1 and llm.prefixes.stats["reused_tokens"] == common
    assert scores == pytest.approx(plain_option_logprobs(llm, second, options), abs=1e-4)


def test_generation_reuses_the_system_prompt_read_by_an_earlier_batch(tiny):
    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok)
    system = "You finish a one-sentence recommendation from the facts only, in plain words, no praise."
    batches = [[chat_prompt(tok, system, u) for u in users] for users in (("Movie: Heat", "Movie: Up"),
                                                                            ("Movie: Alien", "Movie: Jaws"))]
    llm.generate(batches[0], max_new_tokens=6, stop=())
    again = llm.generate(batches[1], max_new_tokens=6, stop=())
    assert llm.prefixes.stats["hits"] == 1
    fresh = LoadedLlm(model=model, tokenizer=tok)  # nothing cached: reads the system prompt itself
    assert again == fresh.generate(batches[1], max_new_tokens=6, stop=())


def test_chat_prompt_ends_where_the_answer_starts(tiny):
    _, tok = tiny
    text = chat_prompt(tok, "sys", "hello")
    assert text == "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"
    assert LoadedLlm(model=None, tokenizer=tok).chat("sys", "hello") == text


def test_batched_generation_matches_one_prompt_at_a_time(tiny):
    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok)
    prompts = ["a short one", "a rather longer prompt than the first", "mid length"]
    streamed: dict[int, str] = {}
    batch = llm.generate(prompts, max_new_tokens=6, stop=(),
                         on_token=lambda i, piece: streamed.__setitem__(i, streamed.get(i, "") + piece))
    alone = [llm.generate([p], max_new_tokens=6, stop=())[0] for p in prompts]
    assert batch == alone
    assert [streamed.get(i, "").strip() for i in range(len(prompts))] == batch


def test_load_causal_lm_reads_safetensors_and_merges_an_adapter(tiny, saved, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    model, _ = tiny
    ids = torch.tensor([[5, 6, 7, 8]])
    loaded, tok = load_causal_lm(saved, "fp32", device="cpu")
    assert not loaded.training and tok.chat_template
    with torch.inference_mode():
        assert torch.allclose(loaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
    trainable, _ = load_causal_lm(saved, "fp32", device="cpu", trainable=True)
    assert next(trainable.parameters()).dtype == torch.float32
    assert next(load_causal_lm(saved, "bf16", device="cpu")[0].parameters()).dtype == torch.bfloat16

    torch.manual_seed(1)
    peft = get_peft_model(load_causal_lm(saved, device="cpu")[0],
                          LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    merged, _ = load_causal_lm(saved, "fp32", adapter=tmp_path / "adapter", device="cpu")
    reference = PeftModel.from_pretrained(load_causal_lm(saved, device="cpu")[0], str(tmp_path / "adapter")).eval()
    with torch.inference_mode():
        a, b = merged(input_ids=ids).logits, reference(input_ids=ids).logits
        assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, model(input_ids=ids).logits, atol=1e-3)


def test_weights_load_from_safetensors_only(saved, tmp_path):
    import shutil

    pickled = tmp_path / "pickled"
    shutil.copytree(saved, pickled)
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(OSError, match="model.safetensors"):
        load_causal_lm(pickled, device="cpu")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(InputError, match="safetensors only"):
        load_causal_lm(saved, adapter=adapter, device="cpu")


def test_dtype_names():
    assert resolve_dtype("fp32", "cpu") == "fp32" and resolve_dtype("auto", "cuda") == "bf16"
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("fp16", "cpu")


def test_an_adapter_of_another_base_is_refused_with_what_to_do(saved, tmp_path):
    """A task moved to another LLM role (task_models) keeps a LoRA adapter trained on the old base:
    loading says so instead of failing with tensor shapes."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(LlamaConfig(vocab_size=101, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    other.name_or_path = "/models/other-base"
    get_peft_model(other, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    with pytest.raises(InputError, match="trained on another base model .*other-base.*rerank_adapter"):
        load_causal_lm(saved, "fp32", adapter=tmp_path / "adapter", device="cpu")


def test_prompts_with_a_shared_system_part_generate_as_one_prompt_at_a_time(tiny):
    """Rows sharing a long start (the system prompt) read it once through a cached prefix; every
    row still continues as if it ran alone."""
    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok)
    system = "You finish a one-sentence recommendation from the facts only, in plain words, no praise."
    prompts = [chat_prompt(tok, system, user) for user in ("Movie: Heat", "Movie: a much longer title here", "x")]
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    assert shared_prefix(ids) >= MIN_SHARED_PREFIX  # the cached path runs
    batch = llm.generate(prompts, max_new_tokens=8, stop=())
    alone = [llm.generate([p], max_new_tokens=8, stop=())[0] for p in prompts]
    assert batch == alone


def test_shared_prefix_leaves_every_row_a_token_and_skips_short_starts():
    rows = [list(range(40)), list(range(40)) + [7, 8]]
    assert shared_prefix(rows) == 39  # the shorter row keeps its last token
    assert shared_prefix([list(range(40))]) == 0  # one row: nothing to share
    assert shared_prefix([[1, 2, 3, 9], [1, 2, 3, 8]]) == 0  # below MIN_SHARED_PREFIX


def test_several_prompts_score_at_once_as_they_score_alone(tiny):
    """Concurrent chats' tool choices: prompts of different lengths sharing a system prompt, option
    lists of different sizes; every score as one call per prompt gives it."""
    from agent.llm import continuation_logprobs_many

    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok)
    system = "Pick one tool for the message: recommend, search_catalog or item_details. Answer with its name."
    jobs = [(chat_prompt(tok, system, "show me something funny"), ["recommend", "search_catalog", "x"]),
            (chat_prompt(tok, system, "who stars in Heat?"), ["item_details", "recommend"]),
            (chat_prompt(tok, system, "a much longer message about a movie with toys in it"), ["recommend", "y", "zz"])]
    together = continuation_logprobs_many(llm, jobs)
    alone = [plain_option_logprobs(LoadedLlm(model=model, tokenizer=tok), p, o) for p, o in jobs]
    assert [len(s) for s in together] == [3, 2, 3]
    for got, want in zip(together, alone, strict=True):
        assert got == pytest.approx(want, abs=1e-4)


def test_prompts_with_no_common_start_score_at_once_too(tiny):
    from agent.llm import continuation_logprobs_many

    model, tok = tiny
    llm = LoadedLlm(model=model, tokenizer=tok)
    jobs = [("abc def", ["x", "yz"]), ("quite another prompt", ["x"])]
    for got, (prompt, options) in zip(continuation_logprobs_many(llm, jobs), jobs, strict=True):
        assert got == pytest.approx(plain_option_logprobs(llm, prompt, options), abs=1e-4)
