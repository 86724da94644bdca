"""Image loading and the OCR / CLIP converters.

Unit tests build their own images and a tiny randomly initialised open_clip model (saved as a
checkpoint) to test the CLIP plumbing only: random weights are never a feature. Integration tests
run the provisioned OCR models on the shared poster data and fail, never skip, when either is
missing.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.core.config import Settings
from agent.core.errors import InputError, ModelNotReady
from agent.ingest.converters import Conversion
from agent.ingest.images import load_image
from plugins import ocr as ocr_plugin
from plugins.image import (
    ClipConverter,
    OcrConverter,
    clean_lines,
    read_labels,
    register_converters,
)

REPO = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """RECSAGE_DATA, else ../shared/data beside the checkout."""
    return Path(os.environ.get("RECSAGE_DATA", REPO.parent / "shared" / "data"))


def jpeg_bytes(size=(64, 96), color=(200, 30, 30)) -> bytes:
    img = Image.new("RGB", size, color)
    for x in range(0, size[0], 4):  # some detail so the entropy-coded data is not trivial
        for y in range(0, size[1], 3):
            img.putpixel((x, y), (x * 3 % 256, y * 5 % 256, 90))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")


# --------------------------------------------------------------------------------------------
# load_image
# --------------------------------------------------------------------------------------------


def test_load_image_reads_jpeg_as_rgb(tmp_path, settings):
    path = tmp_path / "ok.jpg"
    path.write_bytes(jpeg_bytes())
    img = load_image(path, settings)
    assert img.mode == "RGB" and img.size == (64, 96)


def test_load_image_flattens_transparency_onto_white(tmp_path, settings):
    path = tmp_path / "logo.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    img = load_image(path, settings)
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (255, 255, 255)


def test_missing_file(tmp_path, settings):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "nope.jpg", settings)


def test_empty_file(tmp_path, settings):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_image(path, settings)


def test_truncated_jpeg_fails_when_decoded(tmp_path, settings):
    data = jpeg_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])  # the header is intact: Image.open alone succeeds
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_image(path, settings)


def test_corrupt_jpeg_body(tmp_path, settings):
    data = bytearray(jpeg_bytes())
    for i in range(len(data) // 3, len(data) - 10, 7):
        data[i] = 0xFF if data[i] != 0xFF else 0x00
    path = tmp_path / "corrupt.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="corrupt"):
        load_image(path, settings)


def test_not_an_image(tmp_path, settings):
    path = tmp_path / "notes.jpg"
    path.write_text("this is text, not a picture")
    with pytest.raises(InputError, match="supported formats"):
        load_image(path, settings)


def test_unsupported_format(tmp_path, settings):
    path = tmp_path / "icon.ico"
    Image.new("RGB", (16, 16)).save(path, "ICO")
    with pytest.raises(InputError, match="ICO format; supported formats: JPEG"):
        load_image(path, settings)


def test_over_byte_limit(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes())
    with pytest.raises(InputError, match="max_image_bytes"):
        load_image(path, Settings(home=tmp_path, max_image_bytes=100))


def test_over_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (2000, 2000)).save(path)  # 4 Mpx of zeros compress to a few KB
    assert path.stat().st_size < 50_000

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image was decoded before its pixel count was checked")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(InputError, match="max_image_pixels"):
        load_image(path, Settings(home=tmp_path, max_image_pixels=1_000_000))


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    _Handler.body = jpeg_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/poster.jpg"
    server.shutdown()
    server.server_close()


def test_url_is_fetched(http_server, settings):
    assert load_image(http_server, settings).size == (64, 96)


def test_url_over_byte_limit(http_server, tmp_path):
    with pytest.raises(InputError, match="max_image_bytes"):
        load_image(http_server, Settings(home=tmp_path, max_image_bytes=100))


def test_url_unreachable_fails_clearly(settings):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(InputError, match="could not fetch image.*local path"):
        load_image(f"http://127.0.0.1:{port}/x.jpg", settings)


# --------------------------------------------------------------------------------------------
# OCR without the model
# --------------------------------------------------------------------------------------------


def test_clean_lines_drops_low_confidence_and_fragments():
    raw = [
        [None, "TOY", 0.95],
        [None, "STORY", 0.99],
        [None, "2", 0.97],
        [None, "x", 0.99],
        [None, "-", 0.99],
        [None, "RCIRI", 0.35],
        [None, "  TO   INFINITY ", 0.9],
    ]
    assert [t for t, _ in clean_lines(raw)] == ["TOY", "STORY", "2", "TO INFINITY"]
    assert clean_lines(None) == []


def test_ocr_unavailable_without_provisioned_models(settings):
    reason = OcrConverter(settings).unavailable_reason()
    assert reason is not None and "recsage models pull" in reason


class FakeEngine:
    """Stands in for RapidOCR: 'reads' the red channel of the top-left pixel."""

    def __call__(self, image):
        return [[[[0, 0]] * 4, f"RED{image.getpixel((0, 0))[0]}", 0.9]], None


def test_ocr_small_batch_runs_in_process_in_order(tmp_path, settings, monkeypatch):
    monkeypatch.setattr(ocr_plugin, "ocr_model_files", lambda s: {})
    monkeypatch.setattr(ocr_plugin, "build_ocr_engine", lambda files, threads=1: FakeEngine())
    paths = []
    for i, red in enumerate((10, 20, 30)):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (red, 0, 0)).save(p)
        paths.append(p)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(jpeg_bytes()[:100])
    results = OcrConverter(settings).convert_many([paths[0], bad, paths[1], tmp_path / "gone.png", paths[2]])
    assert [r.card_fields["poster_text"] if isinstance(r, Conversion) else type(r) for r in results] == [
        "RED10", InputError, "RED20", InputError, "RED30",
    ]


def test_ocr_pads_elongated_images_and_names_the_file_on_engine_errors(tmp_path, settings, monkeypatch):
    seen = []

    class Recorder(FakeEngine):
        def __call__(self, image):
            seen.append(image.size)
            if image.getpixel((0, 0))[0] == 13:
                raise ValueError("engine exploded")
            return super().__call__(image)

    monkeypatch.setattr(ocr_plugin, "ocr_model_files", lambda s: {})
    monkeypatch.setattr(ocr_plugin, "build_ocr_engine", lambda files, threads=1: Recorder())
    strip, boom = tmp_path / "strip.png", tmp_path / "boom.png"
    Image.new("RGB", (3000, 20), (50, 0, 0)).save(strip)
    Image.new("RGB", (30, 30), (13, 0, 0)).save(boom)
    converter = OcrConverter(settings)
    assert converter.convert(strip).card_fields == {"poster_text": "RED50"}
    assert max(seen[0]) <= ocr_plugin.MAX_ASPECT * min(seen[0])
    with pytest.raises(InputError, match="OCR failed on .*boom.png.*engine exploded"):
        converter.convert(boom)


def _fake_worker_init(files, settings):
    """Worker initializer for the pool tests (runs in the spawned process)."""
    ocr_plugin._WORKER.update(engine=FakeEngine(), settings=settings)


def _failing_worker_init(files, settings):
    raise RuntimeError("worker cannot start")


class CrashingEngine(FakeEngine):
    def __call__(self, image):
        if image.getpixel((0, 0))[0] == 66:
            os._exit(3)  # a native crash inside the OCR runtime, as far as the pool can tell
        return super().__call__(image)


def _crashing_worker_init(files, settings):
    ocr_plugin._WORKER.update(engine=CrashingEngine(), settings=settings)


def _use_pool_with(monkeypatch, initializer):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    def start_pool(self, workers):
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=initializer, initargs=({}, self.settings),
        )

    monkeypatch.setattr(OcrConverter, "_start_pool", start_pool)
    monkeypatch.setattr(ocr_plugin, "ocr_model_files", lambda s: {})
    monkeypatch.setattr(ocr_plugin, "build_ocr_engine", lambda files, threads=1: FakeEngine())


def _red_images(tmp_path, reds):
    paths = []
    for i, red in enumerate(reds):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", (4, 4), (red, 0, 0)).save(p)
        paths.append(p)
    return paths


def _texts(results):
    return [r.card_fields["poster_text"] if isinstance(r, Conversion) else type(r) for r in results]


def test_ocr_pool_keeps_order_and_isolates_bad_files(tmp_path, monkeypatch):
    _use_pool_with(monkeypatch, _fake_worker_init)
    paths = _red_images(tmp_path, range(100, 140))
    paths[5] = tmp_path / "missing.png"
    with OcrConverter(Settings(home=tmp_path, ocr_workers=2)) as converter:
        results = converter.convert_many(paths)
        assert converter._pool is not None
    expected = [f"RED{r}" for r in range(100, 140)]
    expected[5] = InputError
    assert _texts(results) == expected


def test_ocr_pool_survives_a_worker_crash(tmp_path, monkeypatch):
    _use_pool_with(monkeypatch, _crashing_worker_init)
    reds = list(range(100, 140))
    reds[7] = 66  # this image kills its worker process
    paths = _red_images(tmp_path, reds)
    with OcrConverter(Settings(home=tmp_path, ocr_workers=2)) as converter:
        results = converter.convert_many(paths)
    assert isinstance(results[7], RuntimeError) and "crashed" in str(results[7])
    assert _texts(results[:7] + results[8:]) == [f"RED{r}" for r in reds[:7] + reds[8:]]


def test_ocr_falls_back_in_process_when_workers_cannot_start(tmp_path, monkeypatch):
    _use_pool_with(monkeypatch, _failing_worker_init)
    paths = _red_images(tmp_path, range(100, 134))
    converter = OcrConverter(Settings(home=tmp_path, ocr_workers=2))
    assert _texts(converter.convert_many(paths)) == [f"RED{r}" for r in range(100, 134)]
    assert converter._pool is None and converter._pool_disabled


# --------------------------------------------------------------------------------------------
# CLIP plumbing with a tiny random model (never used as a feature)
# --------------------------------------------------------------------------------------------

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """(model name, checkpoint path) of a tiny open_clip model registered for this session."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny_clip")
    configs = folder / "configs"
    configs.mkdir()
    (configs / "recsage-tiny-test.json").write_text(json.dumps(TINY))
    wider = json.loads(json.dumps(TINY))
    wider["embed_dim"] = 24
    (configs / "recsage-tiny-test-wide.json").write_text(json.dumps(wider))
    open_clip.add_model_config(configs)
    torch.manual_seed(0)
    model = open_clip.create_model("recsage-tiny-test", pretrained=None)
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return "recsage-tiny-test", checkpoint


def test_clip_without_checkpoint_is_unavailable(settings):
    converter = ClipConverter(settings)
    reason = converter.unavailable_reason()
    assert reason is not None and "clip_checkpoint" in reason
    assert ClipConverter.optional  # the ingest goes on with OCR only
    with pytest.raises(ModelNotReady):
        converter.convert(Path("any.jpg"))


def test_clip_with_missing_checkpoint_file_is_unavailable(tmp_path):
    converter = ClipConverter(Settings(home=tmp_path, clip_checkpoint=tmp_path / "nope.pt"))
    assert "does not exist" in converter.unavailable_reason()


def test_clip_embeds_images_and_texts(tiny_clip, tmp_path):
    name, checkpoint = tiny_clip
    settings = Settings(home=tmp_path, clip_model=name, clip_checkpoint=checkpoint)
    converter = ClipConverter(settings)
    assert converter.unavailable_reason() is None
    assert name in converter.version  # the weights are part of the content hash

    path = tmp_path / "poster.jpg"
    path.write_bytes(jpeg_bytes())
    result = converter.convert(path)
    _, labels = read_labels()
    assert result.card_fields["caption"] in labels
    vector = np.asarray(result.embedding)
    assert vector.shape == (converter.dimension,) == (16,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)

    # The checkpoint's weights are what runs: a second converter reproduces the vector exactly.
    again = ClipConverter(settings).convert(path)
    assert np.allclose(again.embedding, result.embedding, atol=1e-6)


def test_clip_batch_keeps_order_and_isolates_bad_files(tiny_clip, tmp_path):
    name, checkpoint = tiny_clip
    converter = ClipConverter(Settings(home=tmp_path, clip_model=name, clip_checkpoint=checkpoint))
    good = tmp_path / "a.jpg"
    good.write_bytes(jpeg_bytes())
    other = tmp_path / "b.jpg"
    other.write_bytes(jpeg_bytes(color=(10, 200, 10)))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    results = converter.convert_many([good, bad, other])
    assert isinstance(results[1], InputError)
    assert np.allclose(results[0].embedding, converter.convert(good).embedding, atol=1e-5)
    assert np.allclose(results[2].embedding, converter.convert(other).embedding, atol=1e-5)


def test_clip_checkpoint_of_another_architecture_is_reported(tiny_clip, tmp_path):
    _, checkpoint = tiny_clip
    converter = ClipConverter(
        Settings(home=tmp_path, clip_model="recsage-tiny-test-wide", clip_checkpoint=checkpoint)
    )
    with pytest.raises(ModelNotReady, match="clip_model"):
        converter.dimension  # loading the checkpoint is what fails


def test_labels_file_has_templates_and_labels():
    templates, labels = read_labels()
    assert templates and all("{label}" in t for t in templates)
    assert len(labels) >= 20 and len(set(labels)) == len(labels)


def test_register_converters_registers_all_three():
    seen = []
    register_converters(register=seen.append)
    assert {c.name for c in seen} == {"ocr", "clip", "image_encoder"}
    assert all(c.modality == "image" for c in seen)


# --------------------------------------------------------------------------------------------
# Integration: real OCR on real posters
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def posters() -> Path:
    folder = data_dir() / "posters"
    if not (folder / "1.jpg").is_file():
        pytest.fail(f"poster data not found in {folder}: set RECSAGE_DATA or place ../shared/data")
    return folder


@pytest.fixture(scope="module")
def ocr_settings() -> Settings:
    from agent.core.config import load_settings

    settings = load_settings()
    reason = OcrConverter(settings).unavailable_reason()
    if reason is not None:
        pytest.fail(f"integration test needs the provisioned OCR model: {reason}")
    return settings


@pytest.mark.integration
def test_ocr_reads_toy_story(posters, ocr_settings):
    result = OcrConverter(ocr_settings).convert(posters / "1.jpg")
    assert "toy story" in result.card_fields["poster_text"].lower()


@pytest.mark.integration
def test_ocr_pool_keeps_order_and_survives_a_corrupt_file(posters, ocr_settings, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    data = (posters / "2.jpg").read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])
    others = sorted(posters.glob("*.jpg"), key=lambda p: int(p.stem))[1:40]
    batch = [posters / "1.jpg", corrupt, *others, tmp_path / "missing.jpg"]
    settings = ocr_settings.model_copy(update={"ocr_workers": 2})
    with OcrConverter(settings) as converter:
        results = converter.convert_many(batch)
        assert converter._pool is not None  # a batch this size went to the worker processes
        # The same converter answers single images in-process, identically.
        single = converter.convert(posters / "1.jpg")
    assert len(results) == len(batch)
    assert "toy story" in results[0].card_fields["poster_text"].lower()
    assert results[0].card_fields == single.card_fields
    assert isinstance(results[1], InputError) and "corrupt" in str(results[1])
    assert isinstance(results[-1], InputError) and "not found" in str(results[-1])
    assert all(isinstance(r, Conversion) for r in results[2:-1])
    assert sum(bool(r.card_fields["poster_text"]) for r in results[2:-1]) > len(others) // 2
