from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.lora import save_tiny_llama


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
