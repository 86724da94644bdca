"""Merging an adapter gives the adapter model's logits in a plain model folder."""

from __future__ import annotations

import torch

from finetune.lora.merge import merge_adapter
from finetune.lora.trainer import train_lora
from tests.fakes.lora import make_config


def test_merge_matches_adapter_model(tiny_model, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train_lora(make_config(tiny_model, tmp_path, max_steps=4, dropout=0.0), progress=False)
    adapter = tmp_path / "out" / "adapter"
    merged_dir = merge_adapter(None, adapter, tmp_path / "merged")
    assert (merged_dir / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(merged_dir)
    ids = torch.tensor([tok("which red movie about blue cat answer is")["input_ids"]])
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), adapter).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    with torch.no_grad():
        a, b, c = merged(ids).logits, peft_model(ids).logits, base(ids).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a, c, atol=1e-3)  # the adapter did change something
