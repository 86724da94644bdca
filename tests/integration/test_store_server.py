"""Chroma through `chroma run` and a SIGKILLed ingest: real servers and real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.ingest.store import Store
from tests.fakes.chroma_server import running_chroma
from tests.fakes.store import store_roundtrip

BIN = Path(sys.executable).parent


@pytest.fixture
def chroma_server(tmp_path):
    with running_chroma(tmp_path / "server") as url:
        yield url


@pytest.mark.integration
@pytest.mark.server
def test_http_server_store(chroma_server):
    store_roundtrip(Store(url=chroma_server))


@pytest.mark.integration
def test_sigkill_mid_ingest_then_rerun_has_every_item_once(tmp_path, real_settings):
    catalog = tmp_path / "catalog.jsonl"
    n = 400
    catalog.write_text("".join(json.dumps({"id": f"m{i}", "title": f"Movie number {i}", "genres": "Drama",
                                           "description": f"Plot {i} about things."}) + "\n" for i in range(n)))
    config = tmp_path / "c.toml"
    config.write_text("batch_size = 16\nthreads = 1\n")
    store_dir = tmp_path / "store"
    cmd = [str(BIN / "recsage"), "--config", str(config), "ingest", "--catalog", str(catalog), "--store", str(store_dir)]
    env = {**os.environ, "RECSAGE_HOME": str(real_settings.home)}
    log = tmp_path / "ingest.log"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    # Watch the child's progress lines, not the store: a second Chroma client on the same directory
    # while the child creates its collection races with it.
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and "ingest: 32/" not in log.read_text():
        time.sleep(0.2)
    assert proc.poll() is None, f"ingest ended (exit {proc.poll()}) before it could be killed:\n{log.read_text()[-3000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = Store(store_dir).count()
    assert 32 <= partial < n
    subprocess.run(cmd + ["--json"], env=env, check=True, capture_output=True)
    got = Store(store_dir).collection().get(include=[])["ids"]
    assert len(got) == n and set(got) == {f"m{i}" for i in range(n)}


@pytest.mark.integration
@pytest.mark.server
def test_cli_ingest_and_search_through_a_chroma_server(chroma_server, tmp_path, real_settings):
    catalog = tmp_path / "c.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "1", "title": "Toy Story", "genres": "Animation", "description": "Toys come to life when people leave."},
        {"id": "2", "title": "Heat", "genres": "Crime", "description": "A detective hunts a crew of bank robbers."},
    ]))
    env = {**os.environ, "RECSAGE_HOME": str(real_settings.home)}
    ingest = subprocess.run([str(BIN / "recsage"), "ingest", "--catalog", str(catalog), "--chroma-url", chroma_server,
                             "--json"], capture_output=True, text=True, env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["items_in_store"] == 2
    search = subprocess.run([str(BIN / "recsage"), "search", "bank robbery", "--chroma-url", chroma_server, "-k", "1",
                             "--json"], capture_output=True, text=True, env=env, check=True)
    assert [r["id"] for r in json.loads(search.stdout)] == ["2"]
