"""``recsage train-image-encoder``: catalog images + stored card vectors -> a trained encoder folder
and a held-out report (report.json in the run folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from agent.core.config import Settings
from agent.core.io import write_json
from agent.core.project import Project
from agent.ingest.catalog import load_source
from agent.ingest.image_encoder import ImageEncoder
from agent.retrieval.retriever import open_project_store
from finetune.image_encoder.config import ImageEncoderConfig
from finetune.image_encoder.data import ImageData, load_image_data
from finetune.image_encoder.evaluate import heldout_report
from finetune.image_encoder.trainer import CHECKPOINT_DIR, ENCODER_DIR, train

REPORT_FILE = "report.json"


def prepare_data(project: Project, settings: Settings, config: ImageEncoderConfig, run_dir: Path,
                 progress: bool = True) -> ImageData:
    items = load_source(project.catalog).items
    return load_image_data(items, open_project_store(project), settings, run_dir, size=(config.height, config.width),
                           heldout_fraction=config.heldout_fraction, seed=config.seed, facet=config.facet,
                           progress=progress)


def label_prompts(settings: Settings, facet: str, vocabulary: list[str]) -> np.ndarray:
    """The text embedder's vectors of one card-like line per label ("Genres: Animation")."""
    from agent.ingest.pipeline import build_text_embedder

    return build_text_embedder(settings).embed([f"{facet.capitalize()}: {value}" for value in vocabulary])


def evaluate_encoder(data: ImageData, encoder: ImageEncoder, settings: Settings, facet: str) -> dict:
    vocabulary = sorted({value for values in data.labels for value in values})
    prompts = label_prompts(settings, facet, vocabulary) if vocabulary else None
    return heldout_report(encoder.encode_pixels(data.pixels), data.vectors, data.heldout, data.labels,
                          prompts, vocabulary)


def train_image_encoder(project: Project, settings: Settings, config: ImageEncoderConfig, run_dir: Path, *,
                        max_minutes: float = 0.0, fresh: bool = False, progress: bool = True) -> dict:
    """Train (resuming from ``run_dir``'s checkpoint unless ``fresh``) and, once complete, evaluate."""
    from agent.ingest.pipeline import build_text_embedder

    run_dir = Path(run_dir)
    if fresh:
        for name in (CHECKPOINT_DIR, ENCODER_DIR):
            shutil.rmtree(run_dir / name, ignore_errors=True)
    data = prepare_data(project, settings, config, run_dir, progress)
    embedder = build_text_embedder(settings)
    info = train(data, config, run_dir, text_embedder=f"{embedder.name}@{embedder.version}",
                 max_minutes=max_minutes, progress=progress)
    summary = {"run_dir": str(run_dir), "training": info, "items": len(data.ids), "skipped": data.skipped[:20],
               "skipped_count": len(data.skipped)}
    if info["complete"]:
        encoder = ImageEncoder(run_dir / ENCODER_DIR, threads=config.threads)
        summary["encoder"] = str(encoder.folder)
        summary["heldout"] = evaluate_encoder(data, encoder, settings, config.facet)
    write_json(run_dir / REPORT_FILE, summary)
    return summary
