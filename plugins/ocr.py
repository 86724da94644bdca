"""Poster text through OCR: RapidOCR (PP-OCRv4 ONNX), in worker processes for large batches.

OCR settings were chosen by measurement on the MovieLens poster thumbnails (185x278): detection
at ``limit_side_len=480`` without the angle classifier found the title (fuzzy match) more often
than RapidOCR's defaults (736 + classifier), in less time per poster. Recognised lines below
:data:`MIN_LINE_SCORE` were measured to be almost all junk.
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
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agent.core.errors import InputError, ModelNotReady, require
from agent.ingest.converters import Conversion, MediaConverter
from agent.ingest.images import load_image

if TYPE_CHECKING:  # pragma: no cover

    from agent.core.config import Settings

log = logging.getLogger(__name__)

OCR_MODEL_FILES = {
    "det": "ch_PP-OCRv4_det_infer.onnx",
    "rec": "ch_PP-OCRv4_rec_infer.onnx",
    "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
}

#: Detection input: the shorter image side is scaled to this many pixels.
DET_LIMIT_SIDE_LEN = 480
#: The 180-degree angle classifier flipped more good crops than it fixed on posters.
USE_ANGLE_CLS = False
#: Lines recognised with a lower confidence are dropped: on posters, lines scoring 0.5-0.6 held
#: no title words and were mostly junk, while the 0.6-0.7 band still added title hits.
MIN_LINE_SCORE = 0.6
#: Images more elongated than this (long side / short side) are padded before detection.
MAX_ASPECT = 6
#: Below this many images per worker, starting worker processes costs more than it saves.
MIN_IMAGES_PER_WORKER = 16
#: Images per task sent to a worker: amortises IPC, still keeps both workers busy at the end.
POOL_CHUNK = 8

_ALNUM = re.compile(r"[^\W_]", re.UNICODE)


def ocr_model_files(settings: Settings) -> dict[str, Path]:
    """The three ONNX files of the OCR role, checked to exist (ModelNotReady otherwise)."""
    # lazy: provisioning code is not needed to list plugins
    from agent.provision.models import model_path

    folder = Path(model_path(settings, "ocr"))
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
    except Exception as exc:
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


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool whose worker is stuck on one image: shutdown alone would wait for it."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _over_time(path: Path, settings: Settings) -> InputError:
    return InputError(f"OCR of {Path(path).name} took over {settings.image_seconds:g} s (setting "
                      "image_seconds); the image was skipped")


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
                # futures run in submission order: once earlier ones are done, this one is running
                for i, res in zip(idx, future.result(timeout=self.settings.image_seconds * len(idx)),
                                  strict=True):
                    results[i] = res
            except FutureTimeout:  # a worker is stuck on an image: stop it, find the image below
                _kill_pool(pool)
                broken = True
            except BrokenProcessPool:
                broken = True
        if broken:
            self.close()
            self._retry_one_by_one(paths, results)
        return results  # type: ignore[return-value]

    def _retry_one_by_one(self, paths: list[Path], results: list) -> None:
        """After a worker died or overran ``image_seconds``, redo the unfinished items singly so
        only the culprit fails."""
        pending = [i for i, r in enumerate(results) if r is None]
        log.warning("an OCR worker process died or overran; retrying %d images one at a time", len(pending))
        pool: ProcessPoolExecutor | None = None
        try:
            for i in pending:
                if pool is None:
                    pool = self._start_pool(1)
                try:
                    pool.submit(_worker_ping).result()  # the model loads outside the image's time
                    future = pool.submit(_worker_convert, [str(paths[i])])
                    results[i] = future.result(timeout=self.settings.image_seconds)[0]
                except FutureTimeout:
                    results[i] = _over_time(paths[i], self.settings)
                    _kill_pool(pool)
                    pool = None
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
