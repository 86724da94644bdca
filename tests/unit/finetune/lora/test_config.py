"""The LoRA recipe: strict types and bounds with messages that name the key, the value and what is
valid; the bundled recipes load."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest

from agent.core.errors import InputError
from finetune.lora.config import LoraTrainConfig, load_config
from tests.fakes.lora import make_config


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
    assert all(info.description for info in LoraTrainConfig.model_fields.values())
    assert LoraTrainConfig.help().splitlines()[3].startswith("r (int, default 16): LoRA rank.")


def test_bundled_configs_validate():
    folder = Path(str(importlib.resources.files("finetune") / "configs"))
    configs = sorted(p for p in folder.glob("*.toml") if p.name != "image_encoder.toml")  # not a LoRA recipe
    assert configs
    for path in configs:
        load_config(path)


def test_bad_adapter_dtype_is_refused(tiny_model, tmp_path):
    with pytest.raises(InputError, match="adapter_dtype"):
        make_config(tiny_model, tmp_path, adapter_dtype="int4")


def test_base_model_may_name_any_llm_role(tmp_path, monkeypatch):
    """base_model = "llm_qwen05" trains on that role's provisioned model; a folder or hub id is kept."""
    from finetune.lora.config import resolve_base

    small, qwen = tmp_path / "small", tmp_path / "qwen"
    small.mkdir(), qwen.mkdir()
    config = tmp_path / "settings.toml"
    config.write_text(f'[models]\nllm = "{small}"\nllm_qwen05 = "{qwen}"\n')
    monkeypatch.setenv("RECSAGE_CONFIG", str(config))
    assert resolve_base("llm_qwen05") == str(qwen)
    assert resolve_base("") == resolve_base("llm") == str(small)
    assert resolve_base("org/some-model") == "org/some-model"
    monkeypatch.setenv("RECSAGE_HOME", str(tmp_path / "empty"))  # nothing provisioned there
    from agent.core.errors import ModelNotReady

    with pytest.raises(ModelNotReady, match="recsage models pull --role llm_qwen15"):
        resolve_base("llm_qwen15")
