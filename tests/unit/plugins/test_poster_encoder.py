"""The trained image encoder as an image converter: available only when configured and without
CLIP weights, one vector per image, bad files isolated."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from agent.core.config import Settings
from agent.ingest.image_encoder import build_tower, save_encoder, tower_spec
from plugins.poster_encoder import PosterEncoderConverter


@pytest.fixture
def encoder_folder(tmp_path):
    spec = tower_spec(height=16, width=8, embed_dim=6, layers=1, tower_width=64, patch_size=8)
    save_encoder(tmp_path / "encoder", build_tower(spec), spec)
    return tmp_path / "encoder"


def test_unavailable_without_a_configured_encoder(tmp_path):
    reason = PosterEncoderConverter(Settings(home=tmp_path)).unavailable_reason()
    assert reason is not None and "train-image-encoder" in reason
    assert PosterEncoderConverter.optional


def test_real_clip_weights_take_its_place(tmp_path, encoder_folder):
    checkpoint = tmp_path / "clip.bin"
    checkpoint.write_bytes(b"weights")
    settings = Settings(home=tmp_path, image_encoder=encoder_folder, clip_checkpoint=checkpoint)
    assert "CLIP" in PosterEncoderConverter(settings).unavailable_reason()


def test_vectors_for_images_and_errors_in_place(tmp_path, encoder_folder):
    settings = Settings(home=tmp_path, image_encoder=encoder_folder, threads=1)
    converter = PosterEncoderConverter(settings)
    assert converter.unavailable_reason() is None
    assert converter.version.startswith("1-") and converter.version != "1-none"
    good = tmp_path / "a.png"
    Image.new("RGB", (30, 60), (0, 90, 200)).save(good)
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"not an image")
    results = converter.convert_many([good, bad, good])
    assert isinstance(results[1], Exception)
    assert len(results[0].embedding) == 6 and results[0].card_fields == {}
    assert np.allclose(results[0].embedding, results[2].embedding)
    assert np.allclose(converter.convert(good).embedding, results[0].embedding, atol=1e-6)
