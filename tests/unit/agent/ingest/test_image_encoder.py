"""The trained image encoder's inference path: save, load, encode (a tiny random tower)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agent.core.errors import ModelNotReady
from agent.ingest.image_encoder import (
    ImageEncoder,
    build_tower,
    pixels_to_tensor,
    save_encoder,
    to_pixels,
    tower_spec,
)

SPEC = tower_spec(height=16, width=8, embed_dim=6, layers=1, tower_width=64, patch_size=8, text_embedder="minilm@1")


@pytest.fixture
def encoder_dir(tmp_path):
    import torch

    torch.manual_seed(0)
    tower = build_tower(SPEC)
    save_encoder(tmp_path / "encoder", tower, SPEC, {"steps": 2})
    return tmp_path / "encoder", tower


def test_to_pixels_resizes_to_height_by_width():
    pixels = to_pixels(Image.new("RGB", (185, 278), (255, 0, 0)), (16, 8))
    assert pixels.shape == (16, 8, 3) and pixels.dtype == np.uint8
    assert tuple(pixels[0, 0]) == (255, 0, 0)


def test_pixels_are_normalised_with_clip_constants():
    x = pixels_to_tensor(np.full((1, 2, 2, 3), 255, dtype=np.uint8))
    assert x.shape == (1, 3, 2, 2)
    assert float(x[0, 0, 0, 0]) == pytest.approx((1.0 - 0.48145466) / 0.26862954)


def test_loaded_encoder_gives_the_saved_towers_unit_vectors(encoder_dir):
    import torch

    folder, tower = encoder_dir
    encoder = ImageEncoder(folder, threads=1)
    assert encoder.size == (16, 8) and encoder.dimension == 6
    images = [Image.new("RGB", (40, 80), (10 * i, 200, 30)) for i in range(3)]
    got = encoder.encode(images)
    assert got.shape == (3, 6)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        direct = tower.eval()(pixels_to_tensor(np.stack([to_pixels(im, (16, 8)) for im in images])))
    expected = torch.nn.functional.normalize(direct, dim=-1).numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_a_folder_without_an_encoder_says_how_to_train_one(tmp_path):
    with pytest.raises(ModelNotReady, match="train-image-encoder"):
        ImageEncoder(tmp_path)


def test_no_images_no_vectors(encoder_dir):
    assert ImageEncoder(encoder_dir[0]).encode([]).shape == (0, 6)
