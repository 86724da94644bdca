"""A tiny randomly initialised Llama saved to a folder, memorisable (prompt, answer) rows and a
recipe over them: the LoRA trainer's real code paths in seconds."""

from __future__ import annotations

import json
from pathlib import Path

from finetune.lora.config import LoraTrainConfig

WORDS = ["red", "green", "blue", "cat", "dog", "fish", "movie", "about", "answer", "is", "which", "A", "B", "C"]


def save_tiny_llama(folder: Path) -> Path:
    """A word-level tokenizer over :data:`WORDS` and a 2-layer llama, saved with save_pretrained."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[BOS]", "[EOS]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   bos_token="[BOS]", eos_token="[EOS]")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, initializer_range=0.3)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def write_data(path: Path, n: int = 24) -> Path:
    """Memorisable: the answer is a fixed function of the prompt's animal."""
    answers = {"cat": "A", "dog": "B", "fish": "C"}
    colours = ["red", "green", "blue"]
    with open(path, "w") as fh:
        for i in range(n):
            animal = list(answers)[i % 3]
            prompt = f"which {colours[i % 3]} movie about {colours[(i // 3) % 3]} {animal} answer is"
            fh.write(json.dumps({"prompt": prompt, "answer": answers[animal]}) + "\n")
    return path


def make_config(tiny_model: Path, tmp_path: Path, **kw) -> LoraTrainConfig:
    """A short recipe on the tiny model (10 steps, fp32, no checkpoints but the last)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    base = {"data": str(write_data(tmp_path / "data.jsonl")), "output_dir": str(tmp_path / "out"),
            "base_model": str(tiny_model), "r": 4, "alpha": 8, "dropout": 0.1, "lr": 1e-2, "batch_size": 4,
            "grad_accum": 2, "seed": 3, "bf16": False, "val_fraction": 0.2, "eval_every": 5, "save_every": 0,
            "threads": 1, "max_steps": 10}
    base.update(kw)
    return LoraTrainConfig.from_mapping(base)
