"""A small open_clip image tower trained here (``recsage train-image-encoder``) to map images into
the text embedder's card space, for catalogs without real CLIP weights.

The tower is an open_clip vision transformer built from a config (randomly initialised, then
trained against frozen card vectors); a trained encoder is a folder holding ``encoder.json`` (the
architecture, the input size, the text embedder it was aligned to) and ``encoder.safetensors``.
This module builds, saves and loads such a folder and encodes images; training lives in
``finetune/image_encoder``. Images are resized to the encoder's (height, width) without cropping,
kept as uint8 so that a training run can cache a whole catalog's posters in one array.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent.core.errors import MissingDependency, ModelNotReady
from agent.core.io import read_json, write_json

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

CONFIG_FILE = "encoder.json"
WEIGHTS_FILE = "encoder.safetensors"
FORMAT = 1
COLLECTION = "items_image_encoder"
"""The catalog's image vectors from a trained encoder (CLIP's own go to ``items_image``)."""
# open_clip's normalisation constants (OPENAI_DATASET_MEAN/STD), so a tower keeps CLIP's input convention
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def _torch():
    try:
        import open_clip  # noqa: F401
        import torch
    except ImportError as exc:
        raise MissingDependency(
            f"the image encoder needs torch and open_clip ({exc}); install them with: "
            "pip install open_clip_torch torch torchvision"
        ) from None
    return torch


def build_tower(spec: dict):
    """A randomly initialised open_clip vision tower from ``spec`` (see :func:`tower_spec`)."""
    _torch()
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    vision = dict(spec["vision"])
    vision["image_size"] = tuple(spec["image_size"])
    return _build_vision_tower(int(spec["embed_dim"]), CLIPVisionCfg(**vision))


def tower_spec(*, height: int, width: int, embed_dim: int, layers: int, tower_width: int,
               patch_size: int, head_width: int = 64, text_embedder: str = "") -> dict:
    """Everything needed to rebuild a tower, as plain JSON."""
    return {
        "format": FORMAT, "image_size": [height, width], "embed_dim": embed_dim, "text_embedder": text_embedder,
        "vision": {"layers": layers, "width": tower_width, "head_width": head_width, "patch_size": patch_size},
    }


def to_pixels(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """An RGB image resized to (height, width) as a uint8 (height, width, 3) array."""
    from PIL import Image as PILImage

    height, width = size
    return np.asarray(image.convert("RGB").resize((width, height), PILImage.BICUBIC), dtype=np.uint8)


def pixels_to_tensor(pixels: np.ndarray):
    """uint8 (n, h, w, 3) -> normalised float (n, 3, h, w)."""
    torch = _torch()
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def encode_with(tower, pixels: np.ndarray, dimension: int, batch: int = 64) -> np.ndarray:
    """A tower's L2-normalised vectors of uint8 (n, h, w, 3) pixels, in batches, without gradients."""
    torch = _torch()
    out = []
    tower.eval()
    with torch.inference_mode():
        for start in range(0, len(pixels), batch):
            vectors = tower(pixels_to_tensor(pixels[start:start + batch]))
            out.append(torch.nn.functional.normalize(vectors.float(), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, dimension), dtype=np.float32)


def save_encoder(folder: Path, tower, spec: dict, info: dict | None = None) -> None:
    """Write the tower's weights and spec (weights first: the spec marks the folder complete)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (WEIGHTS_FILE + ".tmp")
    save_file({k: v.detach().contiguous() for k, v in tower.state_dict().items()}, str(tmp))
    tmp.replace(folder / WEIGHTS_FILE)
    write_json(folder / CONFIG_FILE, {**spec, "info": info or {}})


class ImageEncoder:
    """A trained encoder folder, loaded lazily; ``encode`` returns L2-normalised card-space vectors."""

    def __init__(self, folder: Path, threads: int | None = None):
        self.folder = Path(folder)
        self.threads = threads
        self._tower = None
        self._lock = threading.Lock()
        self.spec = self._read_spec()

    def _read_spec(self) -> dict:
        config = self.folder / CONFIG_FILE
        if not config.is_file() or not (self.folder / WEIGHTS_FILE).is_file():
            raise ModelNotReady(
                f"no trained image encoder in {self.folder} (expected {CONFIG_FILE} and {WEIGHTS_FILE}): "
                "train one with `recsage train-image-encoder --run-dir DIR` and set image_encoder = 'DIR/encoder'"
            )
        spec = read_json(config)
        if spec.get("format") != FORMAT:
            raise ModelNotReady(f"{config} has format {spec.get('format')!r}, expected {FORMAT}: retrain the encoder")
        return spec

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.spec["image_size"]
        return int(height), int(width)

    @property
    def dimension(self) -> int:
        return int(self.spec["embed_dim"])

    def weights_id(self) -> str:
        stat = (self.folder / WEIGHTS_FILE).stat()
        return f"{stat.st_size}:{stat.st_mtime_ns}"

    def _load(self):
        with self._lock:
            if self._tower is None:
                torch = _torch()
                from safetensors.torch import load_file

                if self.threads:
                    torch.set_num_threads(self.threads)
                tower = build_tower(self.spec)
                try:
                    tower.load_state_dict(load_file(str(self.folder / WEIGHTS_FILE)))
                except (RuntimeError, OSError) as exc:
                    raise ModelNotReady(f"could not load the image encoder in {self.folder}: {exc}") from None
                self._tower = tower.eval()
            return self._tower

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (n, h, w, 3) at the encoder's size -> (n, dimension) float32, L2-normalised."""
        return encode_with(self._load(), pixels, self.dimension)

    def encode(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self.encode_pixels(np.stack([to_pixels(img, self.size) for img in images]))
