"""Where a trained retriever model lives: its own folder, or that folder inside a retriever folder
(``<store>/retriever/ease``, ``<store>/retriever/sasrec``)."""

from __future__ import annotations

from pathlib import Path


def model_folder(directory: Path, model_dir: str, files: tuple[str, ...]) -> Path:
    """The folder holding ``files``: ``directory/model_dir`` when it has them, else ``directory``;
    a missing file is a FileNotFoundError that says how to make it."""
    directory = Path(directory)
    if (directory / model_dir / files[0]).exists():
        directory = directory / model_dir
    for name in files:
        if not (directory / name).exists():
            raise FileNotFoundError(f"{directory / name} missing: train it with `recsage train-retriever` first")
    return directory
