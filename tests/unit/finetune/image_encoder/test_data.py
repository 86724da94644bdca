"""Image encoder data: the fixed split by id, and the decoded-image cache."""

from __future__ import annotations

import numpy as np
from PIL import Image

from agent.ingest.item import Item
from finetune.image_encoder.data import cached_pixels, is_heldout


def test_split_depends_on_the_id_and_seed_only():
    ids = [str(i) for i in range(2000)]
    held = [i for i in ids if is_heldout(i, 0.15, 0)]
    assert 0.12 < len(held) / len(ids) < 0.18
    assert held == [i for i in ids if is_heldout(i, 0.15, 0)]  # same answer every time
    assert held != [i for i in ids if is_heldout(i, 0.15, 1)]


def test_cache_skips_bad_images_and_is_reused(tmp_path, fake_settings):
    for name, colour in (("a", (255, 0, 0)), ("c", (0, 0, 255))):
        Image.new("RGB", (20, 30), colour).save(tmp_path / f"{name}.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG broken")
    items = [Item(id=n, title=n, image=str(tmp_path / f"{n}.png")) for n in "abc"]
    ids, pixels, skipped = cached_pixels(tmp_path / "run", items, (6, 4), fake_settings, progress=False)
    assert ids == ["a", "c"] and pixels.shape == (2, 6, 4, 3)
    assert tuple(pixels[1, 0, 0]) == (0, 0, 255)
    assert [s["id"] for s in skipped] == ["b"] and "b.png" in skipped[0]["reason"]
    (tmp_path / "a.png").unlink()  # a second call reads the cache, not the files
    again = cached_pixels(tmp_path / "run", items, (6, 4), fake_settings, progress=False)
    assert again[0] == ids and np.array_equal(again[1], pixels)
