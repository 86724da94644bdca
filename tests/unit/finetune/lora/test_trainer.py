"""LoRA trainer on a tiny randomly initialised Llama: learning, resume after a kill, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from agent.core.errors import InputError
from finetune.lora.config import LoraTrainConfig
from finetune.lora.trainer import train_lora
from tests.fakes.lora import make_config


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_qlora_without_cuda_is_a_clear_error(tiny_model, tmp_path):
    with pytest.raises(InputError, match="QLoRA needs a CUDA GPU.*drop --qlora"):
        train_lora(make_config(tiny_model, tmp_path, qlora=True), progress=False)


def _has_bitsandbytes() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.gpu
@pytest.mark.skipif(not (torch.cuda.is_available() and _has_bitsandbytes()),
                    reason="QLoRA needs a CUDA GPU and bitsandbytes (pip install 'recsage[qlora]')")
def test_qlora_trains_over_4bit_weights_and_its_adapter_serves_on_the_cpu(tiny_model, tmp_path, monkeypatch):
    """The --qlora path on a real GPU: the base model's linear layers are NF4 (bitsandbytes), the
    loss still falls, and the adapter it writes merges into the full-precision base on the CPU,
    where recsage serves it."""
    import bitsandbytes as bnb

    import finetune.lora.trainer as trainer
    from agent.llm import load_causal_lm

    loaded = {}
    real_load = trainer.load_causal_lm

    def spy(*args, **kwargs):
        loaded["model"], tok = real_load(*args, **kwargs)
        return loaded["model"], tok

    monkeypatch.setattr(trainer, "load_causal_lm", spy)
    card = train_lora(make_config(tiny_model, tmp_path, qlora=True, max_steps=12, lr=5e-2), progress=False)
    # LoRA wraps every linear layer ("all-linear"): the NF4 weights are each wrapper's base_layer
    four_bit = {name.removesuffix(".base_layer").rsplit(".", 1)[-1]
                for name, m in loaded["model"].named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert {"q_proj", "down_proj"} <= four_bit
    losses = [loss for _, loss in card["loss_curve"]]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 * 0.8
    ids = torch.tensor([[4, 5, 6, 7]])
    base, _ = load_causal_lm(tiny_model, "fp32", device="cpu")
    merged, _ = load_causal_lm(tiny_model, "fp32", adapter=tmp_path / "out" / "adapter", device="cpu")
    with torch.inference_mode():
        assert not torch.allclose(merged(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-4)


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


def _write_toml(config: LoraTrainConfig, path: Path) -> Path:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(json.dumps(x) for x in v) + "]"
        return repr(v)

    path.write_text("".join(f"{k} = {value(v)}\n" for k, v in config.model_dump().items()))
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
    cmd = [str(Path(sys.executable).parent / "recsage"), "finetune", "--recipe", str(toml)]
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
