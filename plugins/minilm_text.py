"""Text embeddings with sentence-transformers (MiniLM by default): cards and queries share one space."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from agent.hookspecs import hookimpl
from agent.ingest.converters import TextEmbedder


class SentenceTransformerEmbedder(TextEmbedder):
    name: ClassVar[str] = "minilm"
    version: ClassVar[str] = "1"
    batch_size: ClassVar[int] = 16  # measured best on 2 cores for ~100-word cards

    def __init__(self, settings):
        super().__init__(settings)
        self._model = None

    def unavailable_reason(self) -> str | None:
        from agent.core.errors import ModelNotReady
        from agent.provision.models import model_path

        try:
            model_path(self.settings, "text_embedder")
        except ModelNotReady as exc:
            return str(exc)
        return None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            from agent.core.config import apply_thread_settings
            from agent.provision.models import model_path

            apply_thread_settings(self.settings)
            self._model = SentenceTransformer(str(model_path(self.settings, "text_embedder")), device="cpu")
        return self._model

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def embed(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=show_progress,
        )
        return vectors.astype(np.float32)


@hookimpl
def register_converters(register):
    register(SentenceTransformerEmbedder)
