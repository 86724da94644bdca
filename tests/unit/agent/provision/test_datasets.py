"""`recsage data fetch` against a local HTTP server that serves a MovieLens-shaped zip."""

import functools
import http.server
import threading
import zipfile

import pytest

from agent.core.errors import RecsageError
from agent.provision.datasets import MOVIELENS_FILES, fetch_movielens


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with zipfile.ZipFile(root / "ml-latest-small.zip", "w") as zf:
        for name in MOVIELENS_FILES:
            zf.writestr(f"ml-latest-small/{name}", f"content of {name}\n")
    (root / "broken.zip").write_bytes(b"not a zip")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_fetch_unpacks_and_is_idempotent(served, tmp_path):
    target = fetch_movielens(tmp_path / "data", url=f"{served}/ml-latest-small.zip")
    assert target == tmp_path / "data" / "ml-latest-small"
    assert (target / "ratings.csv").read_text() == "content of ratings.csv\n"
    assert fetch_movielens(tmp_path / "data", url=f"{served}/missing.zip") == target  # present: no download


def test_fetch_errors_are_clear(served, tmp_path):
    with pytest.raises(RecsageError, match="could not download"):
        fetch_movielens(tmp_path / "a", url=f"{served}/missing.zip")
    with pytest.raises(RecsageError, match="did not return a zip"):
        fetch_movielens(tmp_path / "b", url=f"{served}/broken.zip")
