"""Reference data: MovieLens ml-latest-small from GroupLens, for users with network access.

Licence: research, non-commercial use; acknowledge GroupLens (see the README.txt inside).
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from agent.core.errors import RecsageError
from agent.core.io import sha256_file

MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
MOVIELENS_FILES = ("movies.csv", "ratings.csv", "tags.csv", "links.csv", "README.txt")


def fetch_movielens(dest: Path, url: str = MOVIELENS_URL, timeout: float = 60.0) -> Path:
    """Download and unpack ml-latest-small into ``dest/ml-latest-small``; returns that folder."""
    dest = Path(dest)
    target = dest / "ml-latest-small"
    if all((target / name).exists() for name in MOVIELENS_FILES):
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        archive = Path(tmp) / "ml-latest-small.zip"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise RecsageError(
                f"could not download {url}: {exc}. Without network access, copy ml-latest-small "
                "into a folder and pass it with --movielens"
            ) from None
        try:
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if Path(n).name in MOVIELENS_FILES]
                for name in names:
                    with zf.open(name) as src, open(Path(tmp) / Path(name).name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile:
            raise RecsageError(f"{url} did not return a zip archive") from None
        missing = [n for n in MOVIELENS_FILES if not (Path(tmp) / n).exists()]
        if missing:
            raise RecsageError(f"the archive from {url} lacks {missing}")
        target.mkdir(exist_ok=True)
        for name in MOVIELENS_FILES:
            shutil.move(Path(tmp) / name, target / name)
    digest = sha256_file(target / "ratings.csv")[:12]
    print(f"ml-latest-small in {target} (ratings.csv sha256 {digest}...)")
    return target

