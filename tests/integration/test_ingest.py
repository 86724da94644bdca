"""Ingest on the real converters: each bad file fails alone, the rest of the batch is stored."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.mark.integration
def test_bad_inputs_fail_alone(tmp_path, real_settings, shared_data):
    posters = shared_data / "posters"
    shutil.copy(posters / "1.jpg", tmp_path / "good.jpg")
    corrupt = (posters / "2.jpg").read_bytes()
    (tmp_path / "corrupt.jpg").write_bytes(corrupt[: len(corrupt) // 3])  # truncated JPEG
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "noise.mp3").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "big.jpg").write_bytes((posters / "1.jpg").read_bytes() + b"\0" * 4096)  # valid, but large
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(tmp_path / "voice.wav"),
                    "A lonely robot cleans up an abandoned planet."], check=True)
    rows = [
        {"id": "good", "title": "Toy Story", "image": "good.jpg", "audio": "voice.wav"},
        {"id": "corrupt", "title": "Broken poster", "image": "corrupt.jpg"},
        {"id": "empty-audio", "title": "Silent trailer", "audio": "empty.wav"},
        {"id": "random-mp3", "title": "Noise trailer", "audio": "noise.mp3"},
        {"id": "missing", "title": "Lost poster", "image": "nope.jpg"},
        {"title": "Row without an id"},
        {"id": "big", "title": "Huge poster", "image": "big.jpg"},
        {"id": "plain", "title": "Text only", "description": "A quiet drama."},
    ]
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    limit = (posters / "1.jpg").stat().st_size + 1  # only big.jpg is over the limit
    (tmp_path / "c.toml").write_text(f"max_image_bytes = {limit}\n")
    out = subprocess.run([str(BIN / "recsage"), "--config", str(tmp_path / "c.toml"), "ingest", "--catalog",
                          str(catalog), "--store", str(tmp_path / "store"), "--json"],
                         capture_output=True, text=True, env={"RECSAGE_HOME": str(real_settings.home), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["ingested"] == 7 and summary["items_in_store"] == 7
    assert [(s["line"], "id" in s["reason"]) for s in summary["skipped"]] == [(6, True)]
    failed = {f["id"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == {"corrupt", "empty-audio", "random-mp3", "missing", "big"}
    assert "empty" in failed["empty-audio"]
    assert "not found" in failed["missing"]
    assert "decode" in failed["random-mp3"]
    assert "max_image_bytes" in failed["big"] and "corrupt" in failed["corrupt"]

    from agent.ingest.store import Store

    good = Store(tmp_path / "store").get(["good"])["good"]
    assert "toy story" in good["metadata"]["poster_text"].lower()
    assert "robot" in good["metadata"]["transcript"].lower()
    assert "Audio transcript:" in good["document"]


def _ingest(tmp_path, home, rows, *extra):
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run([str(BIN / "recsage"), "ingest", "--catalog", str(catalog), "--store", str(tmp_path / "store"),
                          "--json", *extra],
                         capture_output=True, text=True, env={"RECSAGE_HOME": str(home), "PATH": "/usr/bin:/bin"},
                         check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.integration
def test_items_dropped_from_the_catalog_are_removed_and_reported(tmp_path, real_settings):
    rows = [{"id": f"p{i}", "title": f"Product {i}", "description": f"A plain product number {i}."} for i in range(5)]
    first = _ingest(tmp_path, real_settings.home, rows)
    assert (first["ingested"], first["removed"], first["items_in_store"]) == (5, 0, 5)

    fewer = _ingest(tmp_path, real_settings.home, rows[:4])
    assert (fewer["ingested"], fewer["unchanged"], fewer["removed"], fewer["items_in_store"]) == (0, 4, 1, 4)
    assert any("removed 1 items" in note and "p4" in note for note in fewer["notes"])
    assert "remove" in fewer["seconds"]

    again = _ingest(tmp_path, real_settings.home, rows[:4])
    assert (again["ingested"], again["unchanged"], again["removed"]) == (0, 4, 0)

    sample = _ingest(tmp_path, real_settings.home, rows[:2], "--limit", "1")  # a sample never deletes
    assert sample["removed"] == 0 and sample["items_in_store"] == 4
    assert any("--limit" in note for note in sample["notes"])

    from agent.ingest.store import Store

    assert sorted(Store(tmp_path / "store").ids()) == ["p0", "p1", "p2", "p3"]
