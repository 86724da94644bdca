"""Image vectors in the card space from an image encoder trained here (``recsage
train-image-encoder``), for catalogs without real CLIP weights.

It fills the image-vector role only where CLIP cannot: with real CLIP weights configured, CLIP
gives the image vectors and this converter stands aside. Its vectors go to their own collection
(``items_image_encoder``), never mixed with CLIP's, since the two spaces differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from agent.core.errors import ModelNotReady
from agent.ingest.converters import Conversion, MediaConverter
from agent.ingest.image_encoder import COLLECTION, ImageEncoder
from agent.ingest.images import load_image

BATCH = 64


class PosterEncoderConverter(MediaConverter):
    """A trained image tower's vector for each image (no card text: it reads no words)."""

    name: ClassVar[str] = "image_encoder"
    modality: ClassVar[str] = "image"
    version: ClassVar[str] = "1"
    optional: ClassVar[bool] = True  # without a trained encoder the ingest goes on with OCR only
    collection: ClassVar[str] = COLLECTION

    def __init__(self, settings):
        super().__init__(settings)
        self._encoder: ImageEncoder | None = None
        # the vectors depend on the weights: part of every item's content hash
        self.version = f"{type(self).version}-{self._weights_id()}"

    def _weights_id(self) -> str:
        try:
            return self.encoder.weights_id()
        except ModelNotReady:
            return "none"

    @property
    def encoder(self) -> ImageEncoder:
        if self._encoder is None:
            if self.settings.image_encoder is None:
                raise ModelNotReady(
                    "no trained image encoder is configured: train one with `recsage train-image-encoder` and set "
                    "image_encoder = '<run dir>/encoder' in the config file (images are read by OCR until then)"
                )
            self._encoder = ImageEncoder(Path(self.settings.image_encoder).expanduser(), threads=self.settings.threads)
        return self._encoder

    def unavailable_reason(self) -> str | None:
        from plugins.clip import ClipConverter

        if ClipConverter(self.settings).unavailable_reason() is None:
            return "real CLIP weights are configured: CLIP gives the image vectors instead"
        try:
            _ = self.encoder  # reads the folder's spec: a missing or wrong folder says so here
        except ModelNotReady as exc:
            return str(exc)
        return None

    def convert(self, path: Path) -> Conversion:
        vector = self.encoder.encode([load_image(path, self.settings)])[0]
        return Conversion(embedding=vector.tolist())

    def convert_many(self, paths: list[Path]) -> list[Conversion | Exception]:
        """Batched forward passes; an unreadable image yields its error in place."""
        results: list[Conversion | Exception] = []
        for start in range(0, len(paths), BATCH):
            images, slots = [], []
            for path in paths[start:start + BATCH]:
                try:
                    images.append(load_image(path, self.settings))
                    slots.append(len(results))
                    results.append(Conversion())
                except Exception as exc:  # noqa: BLE001 - reported per item
                    results.append(exc)
            if not images:
                continue
            try:
                for slot, vector in zip(slots, self.encoder.encode(images), strict=True):
                    results[slot] = Conversion(embedding=vector.tolist())
            except Exception as exc:  # noqa: BLE001 - a model failure fails this batch only
                for slot in slots:
                    results[slot] = exc
        return results
