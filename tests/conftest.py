"""Shared fixtures: real settings and data paths for integration tests, small fakes for unit tests."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent.core.config import Settings, load_settings
from agent.core.errors import InputError, ModelNotReady
from agent.ingest.converters import Conversion, MediaConverter, TextEmbedder

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """RECSAGE_DATA, else ../shared/data beside the checkout (CI lays it there)."""
    return Path(os.environ.get("RECSAGE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = data_dir()
    if not (path / "ml-latest-small" / "movies.csv").exists():
        pytest.fail(f"reference data not found in {path}: set RECSAGE_DATA or place ../shared/data")
    return path


@pytest.fixture(scope="session")
def real_settings() -> Settings:
    """Settings for integration tests: the provisioned models in RECSAGE_HOME (never skipped)."""
    from agent.provision.models import model_path

    settings = load_settings(threads=2)
    for role in ("text_embedder", "ocr", "whisper", "vad"):
        try:
            model_path(settings, role)
        except ModelNotReady as exc:
            pytest.fail(f"integration test needs provisioned models: {exc}")
    return settings


class FakeEmbedder(TextEmbedder):
    """Hashed bag of words: similar texts share dimensions. Unit tests only."""

    name = "fake-text"
    dim = 64

    def __init__(self, settings=None):
        super().__init__(settings)
        self.calls = 0

    @property
    def dimension(self) -> int:
        return self.dim

    def embed(self, texts):
        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)


class FakeImageReader(MediaConverter):
    """Reads a text file pretending to be an image; 'corrupt' content fails. Unit tests only."""

    name = "fake-image"
    modality = "image"

    def __init__(self, settings=None):
        super().__init__(settings)
        self.calls = 0

    def convert(self, path: Path) -> Conversion:
        self.calls += 1
        if not Path(path).exists():
            raise InputError(f"image file not found: {path}")
        text = Path(path).read_text()
        if text == "corrupt":
            raise InputError(f"{path} is not a readable image")
        return Conversion(card_fields={"poster_text": text})


def run_recsage(*args, env=None) -> subprocess.CompletedProcess:
    """The installed ``recsage`` command (beside this interpreter), output captured as text."""
    return subprocess.run([str(Path(sys.executable).parent / "recsage"), *map(str, args)],
                          check=False, capture_output=True, text=True, env=env)


@pytest.fixture(scope="session")
def movielens_store(tmp_path_factory, real_settings, shared_data):
    """MiniLM cards of all 9,742 movies (no posters, to keep CI short), in an embedded store; no
    trained retriever (the content system works, hybrid does not). Shared by every test module."""
    store = tmp_path_factory.mktemp("ml_store")
    out = run_recsage("ingest", "--movielens", shared_data / "ml-latest-small", "--store", store, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["items_in_store"] == 9742
    return store, shared_data / "ml-latest-small"


@pytest.fixture
def fake_settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", batch_size=4)
