"""LoRA trainer on a tiny randomly initialised Llama: learning, label masking, resume, merge."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from agent.core.errors import InputError
from finetune.lora import trainer as lora
from finetune.lora.trainer import LoraTrainConfig, load_config, merge_adapter, train_lora

WORDS = ["red", "green", "blue", "cat", "dog", "fish", "movie", "about", "answer", "is", "which", "A", "B", "C"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llama")
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
    tmp_path.mkdir(parents=True, exist_ok=True)
    base = {"data": str(write_data(tmp_path / "data.jsonl")), "output_dir": str(tmp_path / "out"),
                "base_model": str(tiny_model), "r": 4, "alpha": 8, "dropout": 0.1, "lr": 1e-2, "batch_size": 4,
                "grad_accum": 2, "seed": 3, "bf16": False, "val_fraction": 0.2, "eval_every": 5, "save_every": 0,
                "threads": 1, "max_steps": 10}
    base.update(kw)
    return lora.validate_config(LoraTrainConfig(**base))


def test_loss_goes_down_and_artifacts_written(tiny_model, tmp_path):
    card = train_lora(make_config(tiny_model, tmp_path, max_steps=12, lr=5e-2), progress=False)
    losses = [l for _, l in card["loss_curve"]]
    assert len(losses) == 12 and card["steps"] == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 * 0.8
    out = tmp_path / "out"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "loss.png").stat().st_size > 0
    saved = json.loads((out / "training_card.json").read_text())
    assert saved["val_losses"] and saved["examples_per_s"] > 0 and saved["complete"]
    assert saved["data"]["train_examples"] + saved["data"]["val_examples"] == 24


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


def _adapter(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


class Killed(Exception):
    pass


def test_kill_and_resume_matches_uninterrupted(tiny_model, tmp_path):
    full = train_lora(make_config(tiny_model, tmp_path / "a", max_steps=6, save_every=3), progress=False)

    def kill_at_4(step, loss):
        if step == 4:  # after checkpoint 3, before checkpoint 6: like a SIGKILL mid-run
            raise Killed

    cfg = make_config(tiny_model, tmp_path / "b", max_steps=6, save_every=3)
    with pytest.raises(Killed):
        train_lora(cfg, progress=False, on_step=kill_at_4)
    state = json.loads((tmp_path / "b" / "out" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 3
    resumed = train_lora(make_config(tiny_model, tmp_path / "b", max_steps=6, save_every=3), progress=False)
    assert resumed["steps"] == full["steps"] == 6 and resumed["sessions"] == 2
    a, b = _adapter(tmp_path / "a" / "out"), _adapter(tmp_path / "b" / "out")
    assert set(a) == set(b) and a
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
    for (s1, l1), (s2, l2) in zip(full["loss_curve"], resumed["loss_curve"]):
        assert s1 == s2 and abs(l1 - l2) < 1e-6


def test_resume_with_changed_settings_is_refused(tiny_model, tmp_path):
    train_lora(make_config(tiny_model, tmp_path, max_steps=2), progress=False)
    with pytest.raises(InputError, match="different settings.*lr"):
        train_lora(make_config(tiny_model, tmp_path, max_steps=4, lr=5e-3), progress=False)


def test_config_validation(tmp_path):
    def toml(text):
        path = tmp_path / "c.toml"
        path.write_text(text)
        return path

    good = load_config(toml('data = "d.jsonl"\noutput_dir = "o"\nr = 8\nlr = 1\n'))
    assert good.r == 8 and good.lr == 1.0 and good.target_modules == "all-linear"
    with pytest.raises(InputError, match="unknown config key 'rank'.*valid keys: data"):
        load_config(toml('data = "d"\noutput_dir = "o"\nrank = 8\n'))
    with pytest.raises(InputError, match="'dropout' is 1.5: use a number in \\[0, 1\\)"):
        load_config(toml('data = "d"\noutput_dir = "o"\ndropout = 1.5\n'))
    with pytest.raises(InputError, match="'bf16' is 'yes': use true or false"):
        load_config(toml('data = "d"\noutput_dir = "o"\nbf16 = "yes"\n'))
    with pytest.raises(InputError, match="'batch_size' is 2.5: use an integer"):
        load_config(toml('data = "d"\noutput_dir = "o"\nbatch_size = 2.5\n'))
    with pytest.raises(InputError, match="'data' is missing"):
        load_config(toml('output_dir = "o"\n'))
    with pytest.raises(InputError, match="not valid TOML"):
        load_config(toml('r = \n'))
    assert load_config(toml('data = "d"\noutput_dir = "o"\n'), qlora=True).qlora is True
    assert set(lora.config_help()) == {f for f in LoraTrainConfig.__dataclass_fields__}
    assert all(lora.config_help().values())


def test_bundled_configs_validate():
    folder = Path(lora.__file__).parent / "configs"
    configs = sorted(folder.glob("*.toml"))
    assert configs
    for path in configs:
        load_config(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_qlora_without_cuda_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(InputError, match="QLoRA needs a CUDA GPU.*drop --qlora"):
        train_lora(make_config(tiny_model, tmp_path, qlora=True), progress=False)


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


def test_bf16_adapter_is_exported_and_loads(tiny_model, tmp_path):
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    export = tmp_path / "shipped"
    card = train_lora(make_config(tiny_model, tmp_path, max_steps=3, adapter_dtype="bf16", export_dir=str(export)),
                      progress=False)
    assert card["exported_to"] == str(export)
    assert sorted(p.name for p in export.iterdir()) == ["adapter_config.json", "adapter_model.safetensors",
                                                        "training_card.json"]
    weights = load_file(str(export / "adapter_model.safetensors"))
    assert weights and all(w.dtype == torch.bfloat16 for w in weights.values())
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), str(export))
    lora_a = next(p for n, p in model.named_parameters() if "lora_A" in n)
    assert lora_a.dtype == torch.float32 and lora_a.abs().sum() > 0


def test_bad_adapter_dtype_is_refused(tiny_model, tmp_path):
    with pytest.raises(InputError, match="adapter_dtype"):
        make_config(tiny_model, tmp_path, adapter_dtype="int4")


def _write_toml(config: LoraTrainConfig, path: Path) -> Path:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(json.dumps(x) for x in v) + "]"
        return repr(v)

    path.write_text("".join(f"{k} = {value(v)}\n" for k, v in asdict(config).items()))
    return path


def test_sigkill_of_the_training_process_then_rerun_ends_like_an_uninterrupted_run(tiny_model, tmp_path):
    """The real thing: `recsage finetune` in a subprocess, SIGKILLed after a checkpoint, rerun."""
    import os
    import signal
    import subprocess
    import sys
    import time

    steps = 300
    reference = train_lora(make_config(tiny_model, tmp_path / "a", max_steps=steps, save_every=5, eval_every=0),
                           progress=False)
    config = make_config(tiny_model, tmp_path / "b", max_steps=steps, save_every=5, eval_every=0)
    toml = _write_toml(config, tmp_path / "b.toml")
    cmd = [str(Path(sys.executable).parent / "recsage"), "finetune", "--config", str(toml)]
    state = Path(config.output_dir) / "checkpoint" / "state.json"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if state.is_file():
            try:
                killed_at = json.loads(state.read_text())["step"]
            except (ValueError, KeyError):  # being swapped in
                killed_at = None
            if killed_at and killed_at >= 10:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert killed_at is not None and killed_at < steps
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    card = json.loads((Path(config.output_dir) / "training_card.json").read_text())
    assert card["steps"] == reference["steps"] == steps and card["sessions"] == 2
    assert [s for s, _ in card["loss_curve"]] == [s for s, _ in reference["loss_curve"]]
    assert [l for _, l in card["loss_curve"]] == pytest.approx([l for _, l in reference["loss_curve"]], abs=1e-5)
