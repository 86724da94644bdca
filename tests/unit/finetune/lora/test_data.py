"""Training rows: loss on the answer tokens only, long prompts cut from the front, padding masked."""

from __future__ import annotations

from finetune.lora import data as lora


def test_only_answer_tokens_carry_loss(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    enc = lora.encode_pair(tok, "which red cat answer is", "A B", max_length=32, append_eos=True)
    n_prompt = len(tok("which red cat answer is")["input_ids"])
    assert enc["labels"][:n_prompt] == [-100] * n_prompt
    assert enc["labels"][n_prompt:] == enc["input_ids"][n_prompt:] == [tok.convert_tokens_to_ids(t) for t in ("A", "B", "[EOS]")]
    # a long prompt loses its beginning, never the answer
    enc = lora.encode_pair(tok, " ".join(["red"] * 40), "A", max_length=10, append_eos=False)
    assert len(enc["input_ids"]) == 10 and enc["labels"][-1] == tok.convert_tokens_to_ids("A")
    assert enc["labels"][:-1] == [-100] * 9 and enc["truncated"]
    # padding is masked too
    _ids, mask, labels = lora.collate([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
                                      {"input_ids": [5], "labels": [5]}], pad_id=0)
    assert labels[1].tolist() == [5, -100, -100] and mask[1].tolist() == [1, 0, 0]
