"""A tiny randomly initialised causal LM with a character-level tokenizer and a chat template: the
real code paths (prefix cache, packed rows, chat formatting) run in milliseconds, no weights needed."""

from __future__ import annotations

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_llama():
    """(model, tokenizer): a 2-layer llama over printable ASCII, newline and the two chat tokens."""
    import torch
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<pad>": 1}
    for ch in [chr(c) for c in range(32, 127)] + ["\n"]:
        vocab.setdefault(ch, len(vocab))
    for special in ("<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")
    tok.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        pad_token_id=1, tie_word_embeddings=False,
        initializer_range=0.3,  # sharp attention, so a wrong mask or position changes the scores
    )
    return LlamaForCausalLM(config).eval(), tok


def plain_option_logprobs(llm, prompt: str, options: list[str]) -> list[float]:
    """Log-probability of each option's tokens after ``prompt``, every option run with the whole
    prompt: the plain reference that ``agent.llm.continuation_logprobs`` must reproduce."""
    import torch

    tok = llm.tokenizer
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    rows = [prompt_ids + tok(opt, add_special_tokens=False)["input_ids"] for opt in options]
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    with llm.lock, torch.inference_mode():
        logits = llm.model(input_ids=ids, attention_mask=mask).logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    return [float(sum(logp[i, t - 1, r[t]] for t in range(len(prompt_ids), len(r)))) for i, r in enumerate(rows)]
