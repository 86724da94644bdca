"""The image encoder trainer on a few random images: steps, checkpoints, exact resume."""

from __future__ import annotations

import numpy as np
import pytest

from agent.core.errors import InputError
from agent.ingest.image_encoder import CONFIG_FILE, WEIGHTS_FILE
from finetune.image_encoder.config import ImageEncoderConfig
from finetune.image_encoder.data import ImageData
from finetune.image_encoder.trainer import (
    CHECKPOINT_DIR,
    ENCODER_DIR,
    batch_indices,
    learning_rate,
    train,
)

DIM = 8


def tiny_config(**changes) -> ImageEncoderConfig:
    base = {"height": 16, "width": 16, "patch_size": 8, "layers": 1, "tower_width": 64, "steps": 2, "batch_size": 4,
                "warmup_steps": 1, "checkpoint_every": 1, "threads": 1, "lr": 1e-2}
    return ImageEncoderConfig(**{**base, **changes})


def tiny_data(n: int = 10, seed: int = 0) -> ImageData:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    heldout = np.zeros(n, dtype=bool)
    heldout[:2] = True
    return ImageData([str(i) for i in range(n)], rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8),
                     vectors, heldout, [("a",)] * n)


def weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / ENCODER_DIR / WEIGHTS_FILE))


def test_two_steps_write_an_encoder_and_change_the_weights(tmp_path):
    from finetune.image_encoder.trainer import make_tower

    info = train(tiny_data(), tiny_config(), tmp_path, progress=False)
    assert info["complete"] and info["steps"] == 2 and info["train_items"] == 8
    assert (tmp_path / ENCODER_DIR / CONFIG_FILE).is_file()
    _, untrained, _ = make_tower(tiny_config(), DIM, "")
    trained = weights(tmp_path)
    assert any(not np.array_equal(trained[k].numpy(), v.detach().numpy()) for k, v in untrained.state_dict().items())


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(tiny_data(), tiny_config(), whole, progress=False)
    stopped = train(tiny_data(), tiny_config(), parts, max_minutes=1e-9, progress=False)  # stops after step 1
    assert not stopped["complete"] and stopped["steps"] == 1
    assert not (parts / ENCODER_DIR).exists() and (parts / CHECKPOINT_DIR).is_dir()
    resumed = train(tiny_data(), tiny_config(), parts, progress=False)
    assert resumed["resumed_from"] == 1 and resumed["complete"]
    a, b = weights(whole), weights(parts)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key].numpy(), b[key].numpy()), key


def test_a_checkpoint_for_other_data_is_refused(tmp_path):
    train(tiny_data(), tiny_config(), tmp_path, max_minutes=1e-9, progress=False)
    other = tiny_data()
    other.heldout[:] = False
    other.heldout[5:7] = True
    with pytest.raises(InputError, match="another data"):
        train(other, tiny_config(), tmp_path, progress=False)


def test_batches_walk_a_seeded_permutation_per_epoch():
    epoch = np.concatenate([batch_indices(10, 5, 0, step) for step in (0, 1)])
    assert sorted(epoch) == list(range(10))  # one epoch covers every training item once
    assert not np.array_equal(np.concatenate([batch_indices(10, 5, 0, s) for s in (2, 3)]), epoch)


def test_learning_rate_warms_up_then_decays_to_zero():
    config = tiny_config(steps=11, warmup_steps=2, lr=1.0)
    assert learning_rate(config, 0) == pytest.approx(0.5)
    assert learning_rate(config, 1) == pytest.approx(1.0)
    assert learning_rate(config, 2) == pytest.approx(1.0)  # cosine starts at the peak
    assert learning_rate(config, 11) == pytest.approx(0.0)


def test_sizes_must_fit_the_patches():
    with pytest.raises(InputError, match="multiples of patch_size"):
        tiny_config(height=20)
