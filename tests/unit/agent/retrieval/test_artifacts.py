"""A model is found in its own folder or inside a retriever folder; a missing file says what to run."""

import pytest

from agent.retrieval.artifacts import model_folder


def test_model_folder_inside_a_retriever_folder_or_itself(tmp_path):
    inner = tmp_path / "ease"
    inner.mkdir()
    for name in ("ease.json", "ease.safetensors"):
        (inner / name).write_text("x")
    assert model_folder(tmp_path, "ease", ("ease.json", "ease.safetensors")) == inner
    assert model_folder(inner, "ease", ("ease.json", "ease.safetensors")) == inner


def test_a_missing_file_names_the_command_that_makes_it(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors missing: train it with `recsage train-retriever`"):
        model_folder(tmp_path, "sasrec", ("config.json", "model.safetensors"))
