"""The image encoder's training recipe: a small open_clip vision transformer, trained from random
initialisation against frozen card vectors with a contrastive (InfoNCE) loss."""

from __future__ import annotations

from pydantic import Field

from agent.core.config import ConfigBase


class ImageEncoderConfig(ConfigBase):
    """Sizes are small on purpose: a run must finish on two shared CPU cores."""

    height: int = Field(96, ge=16, le=512, description="Input height in pixels (posters are 2:3, so 96x64 keeps their shape).")
    width: int = Field(64, ge=16, le=512, description="Input width in pixels.")
    patch_size: int = Field(8, ge=2, le=64, description="ViT patch size; height and width must be multiples of it.")
    layers: int = Field(4, ge=1, le=24, description="Transformer blocks in the vision tower.")
    tower_width: int = Field(192, ge=32, le=1024, description="Transformer width (a multiple of 64, the head width).")
    steps: int = Field(800, ge=1, le=1_000_000, description="Optimizer steps in a complete run.")
    batch_size: int = Field(128, ge=2, le=4096, description="Posters per step; the other posters of a batch are the negatives.")
    lr: float = Field(1e-3, gt=0, le=1, description="Peak AdamW learning rate (linear warmup, cosine decay to 0).")
    warmup_steps: int = Field(50, ge=0, description="Linear warmup steps.")
    weight_decay: float = Field(0.05, ge=0, le=1, description="AdamW weight decay (not on norms, biases, embeddings).")
    temperature: float = Field(0.07, gt=0, le=1, description="Initial softmax temperature; learned, never below 0.01.")
    heldout_fraction: float = Field(0.15, gt=0, lt=1, description="Share of items held out by id (never trained on, reported on).")
    seed: int = Field(0, description="Seed for the held-out split, initialisation, batches and augmentation.")
    checkpoint_every: int = Field(100, ge=1, description="Save a resumable checkpoint every this many steps.")
    threads: int = Field(2, ge=1, le=256, description="torch threads for the run.")
    facet: str = Field("genres", min_length=1, description="Catalog facet whose values the genre AUC predicts.")

    def architecture(self) -> dict:
        """The fields that shape the weights: a checkpoint resumes only under the same ones."""
        return self.model_dump(include={"height", "width", "patch_size", "layers", "tower_width"})

    def model_post_init(self, _context) -> None:
        if self.height % self.patch_size or self.width % self.patch_size:
            from agent.core.errors import InputError

            raise InputError(f"height {self.height} and width {self.width} must be multiples of patch_size {self.patch_size}")
        if self.tower_width % 64:
            from agent.core.errors import InputError

            raise InputError(f"tower_width {self.tower_width} must be a multiple of 64 (the head width)")
