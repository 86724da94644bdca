"""A CLIP image embedding with a zero-shot caption (open_clip), only ever with real weights."""

from __future__ import annotations

import importlib.resources
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agent.core.errors import MissingDependency, ModelNotReady
from agent.ingest.converters import Conversion, MediaConverter
from agent.ingest.images import load_image

if TYPE_CHECKING:  # pragma: no cover

    from agent.core.config import Settings

log = logging.getLogger(__name__)

LABELS_FILE = Path(str(importlib.resources.files("prompts") / "clip_labels.txt"))
CLIP_BATCH = 32

_NO_CLIP = (
    "Set clip_checkpoint in the config file to a local open_clip checkpoint file (e.g. "
    "open_clip_model.safetensors, with clip_model naming its architecture, default ViT-B-32), or "
    "point models.clip at an open_clip folder or, with network access, an 'hf-hub:org/repo' id. "
    "Until then images are read with OCR only (no PyPI package carries CLIP weights)."
)


def _is_pretrained_tag(model_name: str, tag: str) -> bool:
    try:
        import open_clip
    except ImportError:
        return False
    return tag in open_clip.list_pretrained_tags_by_model(model_name)


def read_labels(path: Path = LABELS_FILE) -> tuple[list[str], list[str]]:
    """(templates, labels) from a labels file; see prompts/clip_labels.txt for the format."""
    templates: list[str] = []
    labels: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelNotReady(f"CLIP label file not found: {path}") from None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower().startswith("template:"):
            templates.append(line.split(":", 1)[1].strip())
        else:
            labels.append(line)
    if not labels:
        raise ModelNotReady(f"CLIP label file {path} holds no labels")
    return templates or ["{label}"], labels


class ClipConverter(MediaConverter):
    """CLIP image embedding (for image-to-item search) plus the best zero-shot visual label as a
    ``caption`` card field. Only ever runs on real weights from a configured checkpoint."""

    name: ClassVar[str] = "clip"
    modality: ClassVar[str] = "image"
    version: ClassVar[str] = "1"
    optional: ClassVar[bool] = True  # without weights the ingest goes on with OCR only

    labels_file: ClassVar[Path] = LABELS_FILE

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self._model = None
        self._preprocess = None
        self._tokenizer = None
        self._label_vectors = None
        self._labels: list[str] = []
        self._lock = threading.Lock()
        # The embedding depends on the weights: make them part of every item's content hash.
        self.version = f"{type(self).version}-{self._weights_id()}"

    def _weights_id(self) -> str:
        try:
            model_name, pretrained = self._source()
        except ModelNotReady:
            return "none"
        if pretrained and Path(pretrained).is_file():
            stat = Path(pretrained).stat()
            return f"{model_name}:{Path(pretrained).name}:{stat.st_size}:{stat.st_mtime_ns}"
        return f"{model_name}:{pretrained or ''}"

    # weights --------------------------------------------------------------------------------
    def _source(self) -> tuple[str, str | None]:
        """(open_clip model name, pretrained file or tag) from the configured CLIP role."""
        # lazy: provisioning code is not needed to list plugins
        from agent.provision.models import model_path

        source = model_path(self.settings, "clip")  # ModelNotReady says how to provide weights
        text = str(source)
        if text.startswith(("hf-hub:", "local-dir:")):
            return text, None  # open_clip reads the architecture from there (network for hf-hub)
        path = Path(text).expanduser()
        if path.is_dir():
            return f"local-dir:{path}", None
        if path.is_file():
            return self.settings.clip_model, str(path)
        if isinstance(source, str) and "/" not in text and _is_pretrained_tag(self.settings.clip_model, text):
            return self.settings.clip_model, text  # an open_clip pretrained tag (needs network)
        raise ModelNotReady(f"CLIP checkpoint not found: {text}. {_NO_CLIP}")

    def unavailable_reason(self) -> str | None:
        try:
            self._source()
        except ModelNotReady as exc:
            return str(exc)
        return None

    def _load(self):
        with self._lock:
            if self._model is not None:
                return self._model
            model_name, pretrained = self._source()  # before the heavy imports: fail fast
            try:
                import open_clip
                import torch
            except ImportError as exc:
                raise MissingDependency(
                    f"CLIP needs open_clip and torch ({exc}); install them with: "
                    "pip install open_clip_torch torch torchvision"
                ) from None
            try:
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name, pretrained=pretrained, device="cpu"
                )
                tokenizer = open_clip.get_tokenizer(model_name)
            except Exception as exc:  # noqa: BLE001 - corrupt file, wrong architecture, no network
                detail = " ".join(str(exc).split())
                detail = detail if len(detail) <= 300 else detail[:300] + " ..."
                raise ModelNotReady(
                    f"could not load CLIP {model_name!r} from {pretrained or model_name}: "
                    f"{type(exc).__name__}: {detail}. Check that the file is an open_clip checkpoint "
                    "and that clip_model names its architecture (e.g. ViT-B-32; ViT-B-32-quickgelu "
                    "for OpenAI weights; all names: open_clip.list_models())"
                ) from None
            model.eval()
            self._preprocess, self._tokenizer = preprocess, tokenizer
            templates, labels = read_labels(self.labels_file)
            with torch.inference_mode():
                per_template = [
                    self._encode_text(model, tokenizer, [t.replace("{label}", lab) for lab in labels])
                    for t in templates
                ]
                vectors = torch.stack(per_template).mean(0)
                self._label_vectors = torch.nn.functional.normalize(vectors, dim=-1)
            self._labels = labels
            self._model = model
            return model

    @staticmethod
    def _encode_text(model, tokenizer, texts: list[str]):
        import torch

        features = model.encode_text(tokenizer(texts))
        return torch.nn.functional.normalize(features.float(), dim=-1)

    @property
    def dimension(self) -> int:
        """Size of image and text vectors (e.g. 512 for ViT-B-32)."""
        self._load()
        return int(self._label_vectors.shape[1])

    def _convert_images(self, images: list) -> list[Conversion]:
        import torch

        model = self._load()
        with torch.inference_mode():
            batch = torch.stack([self._preprocess(img) for img in images])
            vectors = torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1)
            probs = (100.0 * vectors @ self._label_vectors.T).softmax(dim=-1)
        out = []
        for vec, p in zip(vectors, probs, strict=True):
            top = torch.topk(p, k=min(3, len(self._labels)))
            ranked = [(self._labels[int(i)], round(float(s), 4)) for s, i in zip(top.values, top.indices)]
            out.append(
                Conversion(
                    card_fields={"caption": ranked[0][0]},
                    embedding=vec.tolist(),
                    details={"labels": ranked},
                )
            )
        return out

    def convert(self, path: Path) -> Conversion:
        self._load()
        return self._convert_images([load_image(path, self.settings)])[0]

    def convert_many(self, paths: list[Path]) -> list[Conversion | Exception]:
        """Batches the forward passes; unreadable images yield their error in place."""
        try:
            self._load()
        except Exception as exc:  # noqa: BLE001 - same (actionable) error for every item
            return [exc for _ in paths]
        results: list[Conversion | Exception | None] = [None] * len(paths)
        for start in range(0, len(paths), CLIP_BATCH):
            good: list[tuple[int, Any]] = []
            for i in range(start, min(start + CLIP_BATCH, len(paths))):
                try:
                    good.append((i, load_image(paths[i], self.settings)))
                except Exception as exc:  # noqa: BLE001
                    results[i] = exc
            if not good:
                continue
            try:
                for (i, _), conv in zip(good, self._convert_images([img for _, img in good]), strict=True):
                    results[i] = conv
            except Exception as exc:  # noqa: BLE001 - a model failure fails this batch only
                for i, _ in good:
                    results[i] = exc
        return results  # type: ignore[return-value]
