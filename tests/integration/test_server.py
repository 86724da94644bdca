"""The server on the real thing: real Recommender and ChatAgent over a real Chroma store of all
MovieLens cards, real models, a real uvicorn server on a free loopback port, real clients (the
``openai`` package, httpx, the ``recsage serve`` command)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from agent.server.app import create_app
from agent.server.io import BackgroundServer
from tests.fakes.server import wait_healthy
from tests.fakes.store import free_port

pytestmark = pytest.mark.integration
TOKEN = "integration-test-token"


@pytest.fixture(scope="module")
def real_agent(movielens_store, real_settings):
    from agent.chat.agent import ChatAgent
    from agent.cli.base import project_chat_catalog
    from agent.core.project import movielens_project
    from agent.recommend import Recommender

    project = movielens_project(movielens_store[1], store=movielens_store[0])
    recommender = Recommender(project, real_settings)
    return recommender, ChatAgent(recommender, real_settings, catalog=project_chat_catalog(project, real_settings))


@pytest.fixture(scope="module")
def server_url(real_agent, real_settings):
    from agent.cli.serve import warm_up

    recommender, agent = real_agent
    app = create_app(recommender, agent, real_settings, token=TOKEN)
    warm_up(app)  # as `recsage serve` does: models load once, before the concurrent requests
    with BackgroundServer(app) as url:
        yield url


def stream_answer(client, text: str) -> tuple[str, list, dict]:
    """One streamed completion through the openai client: the text, the chunks, the recsage extra."""
    stream = client.chat.completions.create(model="recsage", stream=True,
                                            messages=[{"role": "user", "content": text}])
    chunks = list(stream)
    answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    extra = next((c.model_extra["recsage"] for c in chunks if (c.model_extra or {}).get("recsage")), {})
    return answer, chunks, extra


def test_openai_client_gets_streamed_answers_to_concurrent_chats(server_url):
    """Three chats at once on the one locked LLM: every stream ends properly with an answer that
    names the items it recommends."""
    import openai

    client = openai.OpenAI(base_url=server_url + "/v1", api_key=TOKEN, timeout=600, max_retries=0)
    texts = ["recommend a funny animated movie about toys", "I want a scary horror film from the 1980s",
             "suggest a romantic comedy set in New York"]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda t: stream_answer(client, t), texts))
    for answer, chunks, extra in results:
        assert answer.strip()
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # streamed, not one blob
        assert chunks[-1].choices[0].finish_reason == "stop"
        titles = [item["title"] for item in extra.get("items", [])]
        assert titles and any(t.split(" (")[0][:20] in answer for t in titles), (answer, titles)


def test_openai_client_with_a_wrong_token_is_refused(server_url):
    import openai

    client = openai.OpenAI(base_url=server_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="recsage", messages=[{"role": "user", "content": "hi"}])


def test_photo_upload_steers_recommend_and_oversized_upload_is_413(real_agent, real_settings, shared_data):
    recommender, agent = real_agent
    poster = shared_data / "posters" / "1.jpg"
    settings = real_settings.model_copy(update={"max_image_bytes": poster.stat().st_size})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with BackgroundServer(create_app(recommender, agent, settings, token=TOKEN)) as url:
        ok = httpx.post(url + "/v1/recommend", headers=headers, data={"k": "5", "rerank": "false"},
                        files={"image": ("poster.jpg", poster.read_bytes(), "image/jpeg")}, timeout=600)
        assert ok.status_code == 200, ok.text
        assert ok.json()["request_text"]["photo_text"] and len(ok.json()["items"]) == 5
        big = httpx.post(url + "/v1/recommend", headers=headers,
                         files={"image": ("big.jpg", poster.read_bytes() + b"\0", "image/jpeg")}, timeout=60)
        assert big.status_code == 413 and "max_image_bytes" in big.json()["error"]["message"]
        missing = httpx.get(url + "/v1/items/does-not-exist", headers=headers, timeout=60)
        assert missing.status_code == 404


def test_voice_note_upload_is_transcribed_in_a_chat(server_url, tmp_path):
    """/v1/chat with a spoken request (espeak-ng -> WAV upload -> Whisper): the streamed turn's
    recommend call carries the transcript."""
    import json

    voice = tmp_path / "request.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(voice), "Recommend a scary horror movie."], check=True)
    with httpx.stream("POST", server_url + "/v1/chat", headers={"Authorization": f"Bearer {TOKEN}"},
                      data={"message": ""}, files={"audio": ("request.wav", voice.read_bytes(), "audio/wav")},
                      timeout=600) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[0]["type"] == "session" and events[-1]["type"] == "done"
    spoken = json.dumps([e for e in events if e["type"] in ("tool", "observation", "done")]).lower()
    assert "horror" in spoken or "scary" in spoken, spoken[:2000]



def test_recsage_serve_command_serves_items_and_the_page(movielens_store):
    store, movielens = movielens_store
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "recsage"), "serve", "--store", str(store), "--movielens", str(movielens),
           "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "RECSAGE_TOKEN"})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base)
        item = httpx.get(base + "/v1/items/1", timeout=120).json()
        assert item["title"].startswith("Toy Story") and item["year"] == 1995
        assert 'id="message"' in httpx.get(base + "/", timeout=10).text
        assert "/v1/recommend" in httpx.get(base + "/openapi.json", timeout=10).json()["paths"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_bench_serve_command(movielens_store, tmp_path):
    """`recsage bench serve` on the real stack: a small burst with the model queues off and on, every
    chat succeeds, the ranking arrives before the end, the ratio and the stage timings are printed."""
    import json

    store, movielens = movielens_store
    out = tmp_path / "bench.json"
    result = subprocess.run([str(Path(sys.executable).parent / "recsage"), "bench", "serve", "--store", str(store),
                             "--movielens", str(movielens), "--concurrency", "2", "--out", str(out)],
                            capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(out.read_text())
    assert list(summary["modes"]) == ["serial", "batched"] and summary["failed"] == 0
    for run in summary["modes"].values():
        assert run["chats"] == run["succeeded"] == 2
        assert all(c["first_token_s"] <= c["total_s"] for c in run["per_chat"])
        assert {"tool_choice", "tool"} <= set(run["stages_s"])
    assert summary["modes"]["batched"]["queues"] and not summary["modes"]["serial"]["queues"]
    assert "ratio s÷b" in result.stdout and "where the time goes" in result.stdout
