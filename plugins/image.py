"""Image converters: poster text through OCR (RapidOCR, PP-OCRv4 ONNX) and a CLIP image
embedding with a zero-shot caption (open_clip, only with real weights).

OCR settings were chosen by measurement on the MovieLens poster thumbnails (185x278): detection
at ``limit_side_len=480`` without the angle classifier found the title in ~79% of 1,000 posters
(fuzzy match) against ~74% for RapidOCR's defaults (736 + classifier), at about half the time per
poster. Recognised lines below :data:`MIN_LINE_SCORE` were measured to be almost all junk.
OCR runs one onnxruntime thread per process; large batches go to ``ocr_workers`` processes.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import threading
import time
import weakref
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agent.converters import Conversion, MediaConverter
from agent.errors import InputError, MissingDependency, ModelNotReady, require
from agent.hookspecs import hookimpl
from agent.images import load_image

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from agent.config import Settings

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# OCR
# --------------------------------------------------------------------------------------------

OCR_MODEL_FILES = {
    "det": "ch_PP-OCRv4_det_infer.onnx",
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}

#: Detection input: the shorter image side is scaled to this many pixels.
DET_LIMIT_SIDE_LEN = 480
#: The 180-degree angle classifier flipped more good crops than it fixed on posters.
USE_ANGLE_CLS = False
#: Lines recognised with a lower confidence are dropped: on 300 posters, lines scoring 0.5-0.6
#: held no title words and were ~85% junk; the 0.6-0.7 band still added ~2 points of title hits.
MIN_LINE_SCORE = 0.6
#: Images more elongated than this (long side / short side) are padded before detection.
MAX_ASPECT = 6
#: Below this many images per worker, starting worker processes costs more than it saves.
MIN_IMAGES_PER_WORKER = 16
#: Images per task sent to a worker: amortises IPC, still keeps both workers busy at the end.
POOL_CHUNK = 8

_ALNUM = re.compile(r"[^\W_]", re.UNICODE)


def _model_path(settings: Settings, role: str) -> Path | str:
    from agent.models import model_path  # lazy: provisioning code is not needed to list plugins

    return model_path(settings, role)


def ocr_model_files(settings: Settings) -> dict[str, Path]:
    """The three ONNX files of the OCR role, checked to exist (ModelNotReady otherwise)."""
    folder = Path(_model_path(settings, "ocr"))
    files = {part: folder / name for part, name in OCR_MODEL_FILES.items()}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise ModelNotReady(
            f"OCR model folder {folder} lacks {', '.join(missing)}; run `recsage models pull` "
            "(or point models.ocr at a folder holding the RapidOCR ONNX files)"
        )
    return files


def build_ocr_engine(files: dict[str, Path], threads: int = 1):
    """A RapidOCR engine with explicit model files and thread counts (nothing read from its
    package defaults except the pipeline shape)."""
    rapidocr = require("rapidocr_onnxruntime")
    return rapidocr.RapidOCR(
        det_model_path=str(files["det"]),
        rec_model_path=str(files["rec"]),
        cls_model_path=str(files["cls"]),
        det_limit_side_len=DET_LIMIT_SIDE_LEN,
        det_limit_type="min",
        use_cls=USE_ANGLE_CLS,
        text_score=0.0,  # we filter ourselves, see clean_lines
        intra_op_num_threads=threads,
        inter_op_num_threads=1,
    )


def clean_lines(raw: list | None, min_score: float = MIN_LINE_SCORE) -> list[tuple[str, float]]:
    """Keep recognised lines (already in reading order: top to bottom, left to right) that are
    confident and hold at least two letters/digits, or a lone digit ("2" of a sequel)."""
    kept: list[tuple[str, float]] = []
    for item in raw or []:
        text, score = " ".join(str(item[1]).split()), float(item[2])
        if score < min_score:
            continue
        alnum = _ALNUM.findall(text)
        if len(alnum) >= 2 or (len(alnum) == 1 and alnum[0].isdigit()):
            kept.append((text, round(score, 3)))
    return kept


def _tame_aspect(image):
    """Pad very elongated images (banners, strips) with their corner colour: detection scales the
    *shorter* side to DET_LIMIT_SIDE_LEN, which would blow a 3000x20 strip up past what the
    resizer accepts."""
    from PIL import Image

    w, h = image.size
    if max(w, h) <= MAX_ASPECT * min(w, h):
        return image
    size = (w, -(-w // MAX_ASPECT)) if w > h else (-(-h // MAX_ASPECT), h)
    canvas = Image.new("RGB", size, image.getpixel((0, 0)))
    canvas.paste(image, ((size[0] - w) // 2, (size[1] - h) // 2))
    return canvas


def ocr_one(engine, path: Path | str, settings: Settings) -> Conversion:
    image = _tame_aspect(load_image(path, settings))
    started = time.perf_counter()
    try:
        raw, _ = engine(image)
    except Exception as exc:  # noqa: BLE001 - the OCR runtime's errors name no file
        raise InputError(
            f"OCR failed on {path} ({image.width}x{image.height}): {type(exc).__name__} {exc}".rstrip()
        ) from exc
    lines = clean_lines(raw)
    return Conversion(
        card_fields={"poster_text": " ".join(text for text, _ in lines)},
        details={"lines": lines, "seconds": round(time.perf_counter() - started, 4)},
    )


# -- worker processes (spawn): one engine per process, loaded once by the initializer ----------

_WORKER: dict[str, Any] = {}


def _exit_with_parent(parent_pid: int, interval_s: float = 2.0) -> None:
    """A SIGKILLed ingest cannot shut its pool down; without this its workers live on."""

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _worker_init(files: dict[str, Path], settings: Settings) -> None:
    _exit_with_parent(os.getppid())
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - rapidocr depends on opencv
        pass
    _WORKER["engine"] = build_ocr_engine(files, threads=1)
    _WORKER["settings"] = settings


def _worker_ping() -> bool:
    return "engine" in _WORKER


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _worker_convert(paths: list[str]) -> list[Conversion | Exception]:
    out: list[Conversion | Exception] = []
    for path in paths:
        try:
            out.append(ocr_one(_WORKER["engine"], path, _WORKER["settings"]))
        except Exception as exc:  # noqa: BLE001 - reported per item
            out.append(_picklable(exc))
    return out


def _shutdown_pool(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=True, cancel_futures=True)


class OcrConverter(MediaConverter):
    """Reads the text printed on an image (poster titles, taglines, names) into ``poster_text``."""

    name: ClassVar[str] = "ocr"
    modality: ClassVar[str] = "image"
    version: ClassVar[str] = f"1-ppocrv4-det{DET_LIMIT_SIDE_LEN}-cls{int(USE_ANGLE_CLS)}-s{MIN_LINE_SCORE}"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self._engine = None
        self._pool: ProcessPoolExecutor | None = None
        self._pool_finalizer = None
        self._pool_disabled = False
        self._lock = threading.Lock()

    def unavailable_reason(self) -> str | None:
        try:
            ocr_model_files(self.settings)
        except (ModelNotReady, InputError) as exc:
            return str(exc)
        return None

    # in-process path ------------------------------------------------------------------------
    def _get_engine(self):
        with self._lock:
            if self._engine is None:
                self._engine = build_ocr_engine(ocr_model_files(self.settings), threads=1)
            return self._engine

    def convert(self, path: Path) -> Conversion:
        return ocr_one(self._get_engine(), path, self.settings)

    # process pool ---------------------------------------------------------------------------
    def _workers_for(self, n: int) -> int:
        if self._pool_disabled:
            return 1
        if self._pool is not None:
            return self.settings.ocr_workers  # already paid for: always use it
        return max(1, min(self.settings.ocr_workers, n // MIN_IMAGES_PER_WORKER))

    def _start_pool(self, workers: int) -> ProcessPoolExecutor:
        import multiprocessing

        files = ocr_model_files(self.settings)  # fail here, once, not inside every worker
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(files, self.settings),
        )
        return pool

    def _pool_for(self, workers: int) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._start_pool(workers)
            # Workers stay up between batches (ingest calls us once per batch) until close().
            self._pool_finalizer = weakref.finalize(self, _shutdown_pool, self._pool)
            # One round trip proves a worker starts and loads the model; a crash later is then
            # an image's fault, not the setup's.
            self._pool.submit(_worker_ping).result()
        return self._pool

    def close(self) -> None:
        """Stop the worker processes (they are also stopped at exit or garbage collection)."""
        if self._pool_finalizer is not None:
            self._pool_finalizer()
        self._pool = None
        self._pool_finalizer = None

    def __enter__(self) -> OcrConverter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def convert_many(self, paths: list[Path]) -> list[Conversion | Exception]:
        """OCR a batch in ``ocr_workers`` processes (one onnxruntime thread each) when it is large
        enough to pay for starting them; results keep the input order, and a bad file (or even a
        crashed worker) yields an exception in its place without stopping the batch."""
        if not paths:
            return []
        workers = self._workers_for(len(paths))
        if workers <= 1:
            return super().convert_many(paths)
        try:
            pool = self._pool_for(workers)
        except ModelNotReady as exc:  # same actionable error for every item
            return [exc for _ in paths]
        except BrokenProcessPool:
            # Workers could not even start (e.g. a script without a ``__main__`` guard under the
            # spawn start method): stay in this process from now on.
            log.warning("OCR worker processes failed to start; reading images in-process")
            self.close()
            self._pool_disabled = True
            return super().convert_many(paths)

        results: list[Conversion | Exception | None] = [None] * len(paths)
        chunks = [
            list(range(start, min(start + POOL_CHUNK, len(paths))))
            for start in range(0, len(paths), POOL_CHUNK)
        ]
        futures: list[tuple[list[int], Future]] = []
        broken = False
        for idx in chunks:
            try:
                futures.append((idx, pool.submit(_worker_convert, [str(paths[i]) for i in idx])))
            except BrokenProcessPool:
                broken = True
                break
        for idx, future in futures:
            try:
                for i, res in zip(idx, future.result(), strict=True):
                    results[i] = res
            except BrokenProcessPool:
                broken = True
        if broken:
            self.close()
            self._retry_one_by_one(paths, results)
        return results  # type: ignore[return-value]

    def _retry_one_by_one(self, paths: list[Path], results: list) -> None:
        """After a worker died, redo the unfinished items singly so only the culprit fails."""
        pending = [i for i, r in enumerate(results) if r is None]
        log.warning("an OCR worker process died; retrying %d images one at a time", len(pending))
        pool: ProcessPoolExecutor | None = None
        try:
            for i in pending:
                if pool is None:
                    pool = self._start_pool(1)
                try:
                    results[i] = pool.submit(_worker_convert, [str(paths[i])]).result()[0]
                except BrokenProcessPool:
                    results[i] = RuntimeError(
                        f"the OCR worker process crashed while reading {paths[i]}; "
                        "check the file (re-encode it as JPEG/PNG) and retry"
                    )
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = None
        finally:
            if pool is not None:
                pool.shutdown(wait=True)


# --------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------

LABELS_FILE = Path(__file__).resolve().parents[1] / "prompts" / "clip_labels.txt"
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
        source = _model_path(self.settings, "clip")  # ModelNotReady says how to provide weights
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

    # public API -----------------------------------------------------------------------------
    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Text queries in the image embedding space: (n, d) float32, L2-normalised."""
        import numpy as np
        import torch

        model = self._load()
        if not texts:
            return np.zeros((0, self._label_vectors.shape[1]), dtype=np.float32)
        with torch.inference_mode():
            chunks = [
                self._encode_text(model, self._tokenizer, texts[i : i + CLIP_BATCH])
                for i in range(0, len(texts), CLIP_BATCH)
            ]
        return torch.cat(chunks).cpu().numpy().astype(np.float32)

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


@hookimpl
def register_converters(register):
    register(OcrConverter)
    register(ClipConverter)

