"""`recsage recommend` end to end on the real models and a real store (the shared text-only
`movielens_store` of all MovieLens movies, no trained retriever: history runs use --system content)."""

import json
import shutil
import subprocess
import wave

import numpy as np
import pytest

from agent.explain.generate import STATUSES
from tests.conftest import run_recsage

TOY_STORY_FAMILY = {"1", "3114", "78499"}  # Toy Story 1-3


def _espeak(text, path):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required for voice-note tests (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True)
    return path


def _silence(path, seconds=3, rate=16000):
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.zeros(seconds * rate, dtype=np.int16).tobytes())
    return path


def _recommend(store, ml, *args):
    return run_recsage("recommend", "--store", store, "--movielens", ml, *args)


@pytest.mark.integration
@pytest.mark.parametrize("args, message", [
    (["--user", "999999"], "unknown user"),
    (["--history", "999999999"], "history is empty"),
    (["--history", ","], "history is empty"),
    (["--user", "1", "-k", "0"], "positive"),
    (["--user", "1", "-k", "100000"], "larger than the catalog"),
    (["--user", "1", "-k", "51", "--explain"], "too many to explain"),
    (["--user", "1", "--history", "1"], "not both"),
    (["--user", "1", "--genre", "Cartoons", "--system", "content"], "unknown genre"),
    (["--user", "1", "--system", "hybrid"], "recsage train-retriever"),
    (["--user", "1", "--image", "missing.jpg"], "not found"),
    (["--query", "toys", "--audio", "missing.wav"], "not found"),
])
def test_recommend_bad_input_exits_2(movielens_store, args, message):
    store, ml = movielens_store
    out = _recommend(store, ml, *args)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
def test_unreadable_media_and_silence_exit_2(movielens_store, tmp_path):
    store, ml = movielens_store
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    noise = tmp_path / "broken.wav"
    noise.write_bytes(b"RIFF....WAVEfmt garbage")
    for args, message in ((["--image", broken], "image"), (["--audio", noise], "audio"),
                          (["--audio", _silence(tmp_path / "silence.wav")], "no speech")):
        out = _recommend(store, ml, "--user", "1", "--system", "content", *args)
        assert out.returncode == 2, out.stderr
        assert message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.integration
def test_recommend_content_for_a_new_history_respects_filters(movielens_store):
    store, ml = movielens_store
    out = _recommend(store, ml, "--history", "1,3114,2355", "--system", "content", "-k", 5, "--genre", "Animation",
                     "--year-min", 1990, "--exclude", "4886", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    ids = [i["id"] for i in data["items"]]
    assert len(ids) == 5 and not {"1", "3114", "2355", "4886"} & set(ids)
    assert all("Animation" in i["facets"].get("genres", []) and i["year"] >= 1990 for i in data["items"])
    assert data["reranked"] is False and data["history_size"] == 3
    first = data["items"][0]["evidence"]
    assert first["history"][0]["id"] in {"1", "3114", "2355"} and 0 < first["history"][0]["similarity"] <= 1
    assert {c["ref"] for c in first["card"]} >= {"genres"}
    assert all(i["explanation"] is None and i["explanation_status"] is None for i in data["items"])


@pytest.mark.integration
def test_voice_note_drives_explained_recommendations(movielens_store, tmp_path):
    """No history: the transcript alone picks the candidates (hybrid text search), reranked, explained."""
    store, ml = movielens_store
    note = _espeak("recommend me a funny animated movie about toys", tmp_path / "note.wav")
    out = _recommend(store, ml, "--audio", note, "-k", 10, "--explain", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert "toys" in data["request_text"]["transcript"].lower()
    titles = [i["title"] for i in data["items"]]
    assert any("toy" in t.lower() for t in titles), titles
    assert any("Animation" in i["facets"].get("genres", []) for i in data["items"]), titles
    assert data["reranked"] is True and data["history_size"] == 0  # a request with text is reranked by default
    for item in data["items"]:
        assert item["explanation_status"] in STATUSES and item["explanation_check"]["passed"]
        assert item["evidence"]["matched_request_part"] == "transcript"
        assert set(item["cites"]) <= {"title", "transcript"} | {c["ref"] for c in item["evidence"]["card"]}
    assert {"request", "retrieve", "rerank", "explain", "total"} <= set(data["timings"])


@pytest.mark.integration
def test_poster_photo_drives_recommendations(movielens_store, shared_data):
    store, ml = movielens_store
    out = _recommend(store, ml, "--image", shared_data / "posters" / "1.jpg", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert "toy" in data["request_text"]["photo_text"].lower()
    top = {i["id"] for i in data["items"]}
    assert len(TOY_STORY_FAMILY & top) >= 2, [i["title"] for i in data["items"]]
