"""Unit tests of the HTTP API on fakes of Recommender and ChatAgent (tests/fakes/server.py):
bodies, uploads and their limits, errors, the bearer token, chat sessions, the OpenAI shapes."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from agent.core.config import Settings
from agent.core.errors import InputError
from agent.server.app import check_bind, create_app
from tests.fakes.server import MOVIES, FakeChatAgent, FakeRecommender


def make_client(tmp_path, token=None, delay_s=0.0, **settings) -> tuple[TestClient, FakeRecommender]:
    recommender = FakeRecommender(tmp_path, delay_s=delay_s)
    app = create_app(recommender, FakeChatAgent(recommender), Settings(**settings), token=token)
    # the page's loopback origin and header (a server without a token refuses other Hosts and bare form POSTs)
    return TestClient(app, base_url="http://127.0.0.1", headers={"X-Recsage-Client": "1"}), recommender


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path, max_image_bytes=1000, max_audio_bytes=2000)[0]


def sse_events(text: str) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]


# --- /v1/recommend ------------------------------------------------------------------------------


def test_recommend_json_returns_items_for_a_user(client):
    body = client.post("/v1/recommend", json={"user": "1", "k": 2}).json()
    assert [i["rank"] for i in body["items"]] == [1, 2]
    assert not {"260", "318"} & {i["id"] for i in body["items"]}  # the user's history is not recommended


def test_recommend_filters_and_exclude_reach_the_recommender(client):
    body = client.post("/v1/recommend", json={"query": "fun", "genres": ["Animation"], "exclude": ["1"]}).json()
    assert [i["id"] for i in body["items"]] == ["2355"]


def test_recommend_facets_filter_with_genres_as_their_shorthand(tmp_path):
    client, recommender = make_client(tmp_path)
    body = client.post("/v1/recommend", json={"query": "fun", "facets": {"genres": ["Sci-Fi"], "brand": ["Acme"]},
                                              "genres": ["Animation"]}).json()
    assert recommender.calls[-1]["filters"].facets == {"genres": ("Sci-Fi", "Animation"), "brand": ("Acme",)}
    assert body["items"] == []  # no fake movie has a brand
    client.post("/v1/recommend", data={"query": "fun", "facets": '{"genres": ["Comedy"]}'})
    assert recommender.calls[-1]["filters"].facets == {"genres": ("Comedy",)}
    response = client.post("/v1/recommend", data={"query": "fun", "facets": "genres=Comedy"})
    assert response.status_code == 422 and "JSON object" in response.text


def test_recommend_reads_its_query_as_the_cli_does(tmp_path):
    client, recommender = make_client(tmp_path)
    client.post("/v1/recommend", json={"query": "a funny animated movie about toys"})
    assert recommender.calls[-1]["understand"] is True  # Recommender.read_query: the CLI's reading


def test_recommend_multipart_with_image_and_audio_uploads(tmp_path):
    client, recommender = make_client(tmp_path)
    files = {"image": ("poster.png", b"TOY STORY"), "audio": ("note.wav", b"something with toys")}
    response = client.post("/v1/recommend", data={"k": "3", "genres": "Comedy,Animation"}, files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_text"] == {"photo_text": "TOY STORY", "transcript": "something with toys"}
    assert len(body["items"]) == 2  # only the Comedy/Animation movies
    call = recommender.calls[-1]
    assert call["image"].suffix == ".png" and call["audio"].suffix == ".wav"
    assert not call["image"].exists()  # the upload folder is removed after the response


@pytest.mark.parametrize("field,size", [("image", 1001), ("audio", 2001)])
def test_upload_over_the_limit_is_413_naming_the_setting(client, field, size):
    response = client.post("/v1/recommend", data={"query": "x"}, files={field: ("f.bin", b"x" * size)})
    assert response.status_code == 413
    assert f"max_{field}_bytes" in response.json()["error"]["message"]


def test_declared_body_over_all_limits_is_refused_before_reading(client):
    response = client.post("/v1/recommend", content=b"{}", headers={"content-length": str(10**9),
                                                                      "content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("kwargs,status,words", [
    ({"json": {"user": "nobody"}}, 400, "unknown user"),
    ({"json": {"k": 0, "query": "x"}}, 422, "k"),
    ({"json": {"query": "x", "colour": "red"}}, 422, "colour"),
    ({"json": {"query": "x", "year_min": 2001, "year_max": 1990}}, 400, "year_min"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"[1, 2]", "headers": {"content-type": "application/json"}}, 400, "object"),
    ({"content": b"q=x", "headers": {"content-type": "text/plain"}}, 415, "content type"),
    ({"data": {"query": "x"}, "files": {"image": ("a.png", b"")}}, 400, "empty"),
    ({"data": {"query": "x"}, "files": {"audio": ("a.wav", b"silence")}}, 400, "no speech"),
])
def test_bad_requests_get_4xx_with_a_message(client, kwargs, status, words):
    response = client.post("/v1/recommend", **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]


def test_slow_model_work_answers_503(tmp_path):
    client, _ = make_client(tmp_path, delay_s=1.0, request_timeout_s=0.2)
    start = time.perf_counter()
    response = client.post("/v1/recommend", json={"query": "x"})
    assert response.status_code == 503
    assert "request_timeout_s" in response.json()["error"]["message"]
    assert time.perf_counter() - start < 0.9  # answered at the limit, not when the work ended


# --- items --------------------------------------------------------------------------------------


def test_item_with_poster_url_and_poster_image(client):
    info = client.get("/v1/items/1").json()
    assert info["title"] == MOVIES["1"][0] and "poster" not in info
    poster = client.get(info["poster_url"])
    assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
    assert poster.content[:2] == b"\xff\xd8"


def test_unknown_item_and_missing_poster_are_404(client):
    assert client.get("/v1/items/999").status_code == 404
    assert client.get("/v1/items/2").json()["poster_url"] is None
    assert client.get("/v1/items/2/poster").status_code == 404


# --- bearer token -------------------------------------------------------------------------------


def test_token_is_required_on_every_v1_route_but_not_health(tmp_path):
    client, _ = make_client(tmp_path, token="s3cret-token")
    assert client.get("/healthz").json()["auth"] is True
    for call in (lambda h: client.post("/v1/recommend", json={"query": "x"}, headers=h),
                 lambda h: client.get("/v1/items/1", headers=h),
                 lambda h: client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]},
                                       headers=h)):
        missing, wrong = call({}), call({"Authorization": "Bearer nope"})
        assert missing.status_code == wrong.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert call({"Authorization": "Bearer s3cret-token"}).status_code == 200


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_needs_no_token(host):
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_beyond_loopback_needs_a_token(host):
    with pytest.raises(InputError, match="--token"):
        check_bind(host, None)
    check_bind(host, "a-long-random-token")


def test_serve_refuses_a_public_host_without_token(tmp_path, monkeypatch):
    from agent.cli.main import cli

    monkeypatch.delenv("RECSAGE_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--store", str(tmp_path), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "--token" in result.output and "Traceback" not in result.output


# --- /v1/chat -----------------------------------------------------------------------------------


def test_chat_streams_events_and_keeps_the_session(client):
    first = sse_events(client.post("/v1/chat", json={"message": "something fun"}).text)
    assert [e["type"] for e in first][:2] == ["session", "tool"] and first[-1]["type"] == "done"
    assert "".join(e["text"] for e in first if e["type"] == "token").strip() == first[-1]["answer"]
    shown = {i["id"] for i in first[-1]["items"]}
    session_id = first[0]["session_id"]
    second = sse_events(client.post("/v1/chat", data={"message": "not that one", "session_id": session_id}).text)
    assert second[0]["session_id"] == session_id
    assert not shown & {i["id"] for i in second[-1]["items"]}  # the refinement used the session's state


def test_chat_bad_input_is_4xx_before_the_stream(client):
    assert client.post("/v1/chat", json={"message": "hi", "user": "nobody"}).status_code == 400
    assert client.post("/v1/chat", json={"message": "  "}).status_code == 400
    response = client.post("/v1/chat", data={"message": "x"}, files={"image": ("a.png", b"silence")})
    assert response.status_code == 400 and "no text" in response.json()["error"]["message"]


def test_chat_reset_forgets_the_session(client):
    session_id = sse_events(client.post("/v1/chat", json={"message": "fun"}).text)[0]["session_id"]
    assert client.delete(f"/v1/chat/{session_id}").status_code == 200
    assert client.delete(f"/v1/chat/{session_id}").status_code == 404
    again = sse_events(client.post("/v1/chat", json={"message": "fun", "session_id": session_id}).text)
    assert again[0]["session_id"] != session_id  # a forgotten id starts a new chat


def test_a_session_answers_one_message_at_a_time(client):
    session_id = sse_events(client.post("/v1/chat", json={"message": "fun"}).text)[0]["session_id"]
    slow = threading.Thread(target=client.post, args=("/v1/chat",),
                            kwargs={"json": {"message": "slow", "session_id": session_id}})
    slow.start()
    time.sleep(0.5)
    response = client.post("/v1/chat", json={"message": "fun", "session_id": session_id})
    slow.join()
    assert response.status_code == 409


def test_chat_over_time_limit_is_503(tmp_path):
    client, _ = make_client(tmp_path, request_timeout_s=0.3)
    assert client.post("/v1/chat", json={"message": "slow"}).status_code == 503


# --- OpenAI-compatible --------------------------------------------------------------------------

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "something fun"},
            {"role": "assistant", "content": "Try Toy Story."}, {"role": "user", "content": "more please"}]


def test_completion_non_streaming_shape(client):
    body = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}).json()
    assert body["object"] == "chat.completion" and body["model"] == "m"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    titles = [i["title"] for i in body["recsage"]["items"]]
    assert titles and all(t in choice["message"]["content"] for t in titles)


def test_completion_stream_chunks_follow_openai(client):
    response = client.post("/v1/chat/completions", json={"stream": True, "messages": MESSAGES})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")
    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # the ranking goes out as soon as the turn has it, before the answer's words
    ranked = next(i for i, c in enumerate(chunks) if (c.get("recsage") or {}).get("items"))
    first_words = next(i for i, c in enumerate(chunks) if c["choices"][0]["delta"].get("content"))
    assert ranked < first_words and chunks[ranked]["choices"][0]["delta"] == {}
    assert [i["id"] for i in chunks[ranked]["recsage"]["items"]] == [i["id"] for i in chunks[-1]["recsage"]["items"]]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    whole = client.post("/v1/chat/completions", json={"messages": MESSAGES}).json()
    assert streamed.strip() == whole["choices"][0]["message"]["content"]


def _image_message(url: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": "like this"},
                                        {"type": "image_url", "image_url": {"url": url}}]}


def test_completion_takes_an_image_data_url(tmp_path):
    client, recommender = make_client(tmp_path)
    url = "data:image/png;base64," + base64.b64encode(b"TOY STORY").decode()
    response = client.post("/v1/chat/completions", json={"messages": [_image_message(url)]})
    assert response.status_code == 200, response.text
    assert recommender.calls[-1]["image"].suffix == ".png" and recommender.calls[-1]["query"] == "like this"


@pytest.mark.parametrize("url,status", [
    ("https://example.org/poster.jpg", 400),
    ("data:image/png;base64,@@@not base64", 400),
    ("data:image/png;base64," + base64.b64encode(b"x" * 2000).decode(), 413),
])
def test_completion_bad_images(client, url, status):
    response = client.post("/v1/chat/completions", json={"messages": [_image_message(url)]})
    assert response.status_code == status, response.text


def test_completion_needs_a_user_message(client):
    response = client.post("/v1/chat/completions", json={"messages": [{"role": "system", "content": "hi"}]})
    assert response.status_code == 400 and "user message" in response.json()["error"]["message"]
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 422


def test_models_list_and_pages(client):
    assert client.get("/v1/models").json()["data"][0]["id"] == "recsage"
    page = client.get("/")
    assert page.status_code == 200 and 'id="message"' in page.text
    assert client.get("/web/app.js").status_code == 200
    assert "/v1/chat/completions" in client.get("/openapi.json").json()["paths"]


def test_openai_client_parses_both_modes(tmp_path):
    """The openai package itself reads our responses: a completion, a stream, an auth error."""
    import openai

    from agent.server.io import BackgroundServer

    recommender = FakeRecommender(tmp_path)
    app = create_app(recommender, FakeChatAgent(recommender), Settings(), token="tok")
    with BackgroundServer(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="tok", max_retries=0)
        whole = client.chat.completions.create(model="recsage", messages=MESSAGES)
        stream = client.chat.completions.create(model="recsage", messages=MESSAGES, stream=True)
        pieces = [c.choices[0].delta.content or "" for c in stream]
        assert "".join(pieces).strip() == whole.choices[0].message.content
        assert whole.model_extra["recsage"]["items"]
        assert [m.id for m in client.models.list()] == ["recsage"]
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="bad", max_retries=0).models.list()


# --- model queues -------------------------------------------------------------------------------


def test_the_app_puts_a_queue_in_front_of_models_and_closes_it_on_shutdown(tmp_path):
    from agent.core.batching import BatcherClosed

    class Explainer:
        def explain(self, evidences):
            return [f"why {e}" for e in evidences]

    recommender = FakeRecommender(tmp_path)
    recommender.wrap_part = lambda name, part: part  # what agent.recommend.Recommender starts with
    app = create_app(recommender, FakeChatAgent(recommender), Settings(batch_window_ms=0))
    front = recommender.wrap_part("explainer", Explainer())  # as the Recommender loads its explainer
    with TestClient(app):
        assert front.explain(["a", "b"]) == ["why a", "why b"]
        assert app.state.recsage.queues.stats()["explain"]["rows"] == 2
    with pytest.raises(BatcherClosed):  # the server stopped: no caller waits forever
        front.explain(["c"])
