"""The converter plugin shape: one class per modality turns a file (or texts) into LLM-readable
text and, where the model has one, a vector.

A converter holding a model loads it lazily on first use, so listing plugins or re-ingesting an
unchanged catalog never pays for model loading.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from agent.core.config import Settings


@dataclass
class Conversion:
    """What one converter read from one media file."""

    card_fields: dict[str, str] = field(default_factory=dict)
    """Text for the item's context card, e.g. ``{"poster_text": "TOY STORY"}``."""
    embedding: list[float] | None = None
    """A vector for this modality's collection (e.g. CLIP image embedding), if any."""
    details: dict[str, Any] = field(default_factory=dict)
    """Extra facts for callers (language, no_speech, ...); not stored on the card."""


class Converter(ABC):
    """Base of every converter. Subclasses set ``name``, ``modality`` and ``version``."""

    name: ClassVar[str]
    modality: ClassVar[str]  # "audio" | "image" | "text"
    version: ClassVar[str] = "1"
    """Bump when the converter's output changes: it is part of every item's content hash."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def unavailable_reason(self) -> str | None:
        """None when usable; otherwise why not and what to do (e.g. no CLIP weights)."""
        return None


class MediaConverter(Converter):
    """Converts one audio or image file."""

    @abstractmethod
    def convert(self, path: Path) -> Conversion:
        """Convert one file; raise :class:`agent.core.errors.InputError` for a bad file."""

    def convert_many(self, paths: list[Path]) -> list[Conversion | Exception]:
        """Convert a batch; one bad file yields its exception in place and the rest go on.

        Subclasses override this to batch or parallelise (e.g. OCR in worker processes).
        """
        results: list[Conversion | Exception] = []
        for path in paths:
            try:
                results.append(self.convert(path))
            except Exception as exc:  # noqa: BLE001 - reported per item, never aborts the batch
                results.append(exc)
        return results


class TextEmbedder(Converter):
    """Embeds texts (context cards, queries) into one vector space."""

    modality: ClassVar[str] = "text"

    @property
    @abstractmethod
    def dimension(self) -> int:
        """Vector size."""

    @abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """Return an (n, dimension) float32 array of L2-normalised vectors."""
