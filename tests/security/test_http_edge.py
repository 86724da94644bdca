"""The HTTP edge under hostile clients, on a real uvicorn server on loopback (fakes for the models,
tests/fakes/http_server.py): the token before the body, byte caps that count chunked bodies, a
body read deadline, nested JSON, Host headers and cross-site simple POSTs, no server paths in
errors, disconnects and timeouts that end a chat turn and free its session, SIGTERM mid-turn."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from agent.core.config import Settings
from agent.core.errors import Busy
from agent.server.app import create_app
from agent.server.io import ApiError, BackgroundServer, BlockingStream
from tests.fakes.http_server import (
    STEPS,
    PathLeakingRecommender,
    connect,
    read_response,
    read_until,
    send_head,
    step_app,
    try_send,
)

REPO = Path(__file__).resolve().parents[2]
TOKEN = "edge-test-token"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def open_server():
    """A server without a token (loopback only) and its fake chat agent."""
    app, agent = step_app(max_request_bytes=200_000, body_read_timeout_s=1.0)
    with BackgroundServer(app) as url:
        yield url, agent


@pytest.fixture(scope="module")
def token_server():
    app, _ = step_app(token=TOKEN, max_request_bytes=200_000)
    with BackgroundServer(app) as url:
        yield url


def host_of(url: str) -> str:
    return url.split("//", 1)[1]


# --- bodies: token first, byte cap, read deadline --------------------------------------------------


def test_wrong_token_is_401_before_the_body_is_read(token_server):
    """200 MB declared, 64 KB sent: the 401 comes back at once, nothing waits for the rest."""
    with connect(token_server) as sock:
        send_head(sock, "POST", "/v1/chat/completions", {"Host": host_of(token_server), **JSON,
                                                         "Content-Length": str(200_000_000)})
        try_send(sock, b"[" * 65536)
        status, body = read_response(sock, timeout_s=3)
    assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("path", ["/v1/recommend", "/v1/chat", "/v1/chat/completions"])
def test_chunked_body_over_the_cap_is_413(open_server, path):
    """No Content-Length to check: the bytes are counted as they arrive."""
    url, _ = open_server
    with connect(url) as sock:
        send_head(sock, "POST", path, {"Host": host_of(url), **JSON, "Transfer-Encoding": "chunked"})
        piece = b'{"query": "' + b"x" * 50_000
        for _ in range(20):  # 1 MB in 50 KB chunks, against a 200 KB cap
            if not try_send(sock, b"%x\r\n%s\r\n" % (len(piece), piece)):
                break
        try_send(sock, b"0\r\n\r\n")
        status, body = read_response(sock, timeout_s=5)
    assert status == 413 and "max_request_bytes" in json.loads(body)["error"]["message"]


def test_declared_length_over_the_cap_is_413_before_reading(open_server):
    url, _ = open_server
    with connect(url) as sock:
        send_head(sock, "POST", "/v1/recommend", {"Host": host_of(url), **JSON, "Content-Length": "300000"})
        status, _ = read_response(sock, timeout_s=3)  # not one body byte sent
    assert status == 413


def test_slow_body_is_408_at_the_deadline(open_server):
    """One byte every 0.3 s: 408 once body_read_timeout_s (1 s here) has passed, not when the body ends."""
    url, _ = open_server
    start = time.monotonic()
    with connect(url) as sock:
        send_head(sock, "POST", "/v1/recommend", {"Host": host_of(url), **JSON, "Content-Length": "100"})
        sock.settimeout(0.3)
        status = None
        for _ in range(30):
            try_send(sock, b" ")
            try:
                if sock.recv(1, socket.MSG_PEEK):  # an answer is waiting
                    status, _ = read_response(sock, timeout_s=2)
                    break
            except TimeoutError:
                continue
    assert status == 408 and time.monotonic() - start < 3


@pytest.mark.parametrize("path", ["/v1/recommend", "/v1/chat", "/v1/chat/completions"])
@pytest.mark.parametrize("shape", ["[", '{"a":'])
def test_deeply_nested_json_is_4xx_json(open_server, path, shape):
    url, _ = open_server
    body = shape * 50_000 + "1" + ("]" if shape == "[" else "}") * 50_000
    response = httpx.post(url + path, content=body, headers=JSON, timeout=10)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert "error" in response.json()


# --- Host headers and cross-site simple requests ---------------------------------------------------


@pytest.mark.parametrize("host", ["evil.com", "evil.com:80", "127.0.0.1.evil.com", "10.0.0.1"])
def test_foreign_host_is_403_without_a_token(open_server, token_server, host):
    """DNS rebinding: a page of evil.com whose name now points at 127.0.0.1 reaches the server with its own Host."""
    url, _ = open_server
    for path in ("/healthz", "/v1/items/1", "/"):
        response = httpx.get(url + path, headers={"Host": host}, timeout=10)
        assert response.status_code == 403 and "Host" in response.json()["error"]["message"]
    allowed = httpx.get(token_server + "/v1/items/1", headers={"Host": host, "Authorization": f"Bearer {TOKEN}"},
                        timeout=10)
    assert allowed.status_code == 200  # with a token any name may be served


@pytest.mark.parametrize("port_part", ["", ":8000"])
@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_hosts_are_served(open_server, name, port_part):
    url, _ = open_server
    assert httpx.get(url + "/v1/items/1", headers={"Host": name + port_part}, timeout=10).status_code == 200


@pytest.mark.parametrize("kwargs", [
    {"content": b'{"query": "x"}', "headers": {"content-type": "text/plain"}},
    {"data": {"query": "x"}},  # application/x-www-form-urlencoded
    {"data": {"query": "x"}, "files": {"image": ("a.png", b"TOY STORY")}},  # multipart/form-data
    {"content": b'{"query": "x"}'},  # no content type at all (a fetch of a Blob)
])
def test_cross_site_simple_post_is_403_without_the_client_header(open_server, kwargs):
    url, _ = open_server
    refused = httpx.post(url + "/v1/recommend", timeout=10, **kwargs)
    assert refused.status_code == 403 and "X-Recsage-Client" in refused.json()["error"]["message"]
    headers = {**kwargs.get("headers", {}), "X-Recsage-Client": "1"}
    assert httpx.post(url + "/v1/recommend", timeout=10, **{**kwargs, "headers": headers}).status_code != 403


def test_json_post_needs_no_client_header(open_server):
    url, _ = open_server
    assert httpx.post(url + "/v1/recommend", json={"query": "x"}, timeout=10).status_code == 200


# --- server paths ---------------------------------------------------------------------------------


def test_upload_folder_never_appears_in_errors():
    recommender = PathLeakingRecommender()
    app = create_app(recommender, None, Settings())
    with BackgroundServer(app) as url:
        response = httpx.post(url + "/v1/recommend", data={"query": "x"}, headers={"X-Recsage-Client": "1"},
                              files={"image": ("poster.png", b"not an image")}, timeout=10)
    message = response.json()["error"]["message"]
    assert response.status_code == 400 and "image.png" in message  # the input, by its field
    assert "recsage-upload-" not in message and "/tmp" not in message, message


# --- chat turns: disconnects, timeouts, one turn per session --------------------------------------


def _start_turn(url: str, message: str, session_id: str | None = None):
    """A streamed /v1/chat turn on a raw socket, read up to its first model event."""
    sock = connect(url)
    body = json.dumps({"message": message, "session_id": session_id}).encode()
    send_head(sock, "POST", "/v1/chat", {"Host": host_of(url), **JSON, "Content-Length": str(len(body))})
    sock.sendall(body)
    return sock, read_until(sock, b"event: tool", timeout_s=5)


def test_client_disconnect_ends_the_turn_at_its_next_step(open_server):
    """The turn's generator is closed in its worker thread right after the client goes, so no
    further model step runs; nothing holds the generator but the server (the fake keeps it alive)."""
    url, agent = open_server
    sock, head = _start_turn(url, "steps")
    assert b" 200 " in head.split(b"\r\n")[0]
    sock.close()
    session = agent.sessions[-1]
    assert session.closed.wait(timeout=3), "the turn still runs after its client disconnected"
    assert session.steps < STEPS // 4 and session.closed_in != threading.main_thread().name


@pytest.fixture(scope="module")
def real_session_server():
    """The real ChatAgent and ChatSession (rules, no model) over a recommender whose work for a
    "slow" request takes a second, as a reranking pass does."""
    from tests.fakes.chat import fake_agent

    agent = fake_agent(Settings(chat_explain=False))
    fast = agent.recommender.recommend

    def recommend(**kwargs):
        if "slow" in (kwargs.get("query") or ""):
            time.sleep(1.0)
        return fast(**kwargs)

    agent.recommender.recommend = recommend
    kept, new_session = [], agent.session

    def session(user=None):  # every turn's generator kept alive: only an explicit close may end it
        chat = new_session(user)
        send = chat.send
        chat.send = lambda *args, **kwargs: kept.append(send(*args, **kwargs)) or kept[-1]
        return chat

    agent.session = session
    with BackgroundServer(create_app(agent.recommender, agent, Settings())) as url:
        yield url


def test_new_turn_on_the_session_after_a_disconnect(real_session_server):
    """A client gone 0.3 s into a turn: the session answers its next turn within seconds (409 only
    while the old turn's step really runs), it neither hangs nor stays busy."""
    url = real_session_server
    first = httpx.post(url + "/v1/chat", json={"message": "a funny movie"}, timeout=10).text
    session_id = json.loads(first.split("data: ", 1)[1].split("\n", 1)[0])["session_id"]
    sock, _ = _start_turn(url, "a slow funny movie", session_id)
    time.sleep(0.3)
    sock.close()
    deadline, status = time.monotonic() + 4, None
    while time.monotonic() < deadline:
        response = httpx.post(url + "/v1/chat", json={"message": "a scary movie", "session_id": session_id},
                              timeout=3)
        status = response.status_code
        if status == 200:
            assert '"type": "done"' in response.text
            break
        assert status == 409  # only while the old turn really runs
        time.sleep(0.1)
    assert status == 200, "the session stayed busy after its client disconnected"


def test_timeout_closes_the_turn_generator():
    """A turn over request_timeout_s is a 503 and is stopped, not abandoned: no step after the next."""
    ran, closed = [], threading.Event()

    def turn():
        try:
            for i in range(50):
                time.sleep(0.2)
                ran.append(i)
                yield {"type": "token", "text": str(i)}
        finally:
            closed.set()

    import asyncio

    generator = turn()  # kept alive here: only an explicit close ends it
    stream = BlockingStream(generator, timeout_s=0.5)

    async def drain():
        while await stream.next() is not None:
            pass

    with pytest.raises(ApiError) as caught:
        asyncio.run(drain())
    assert caught.value.status == 503
    assert closed.wait(timeout=2) and len(ran) <= 4


def test_a_suspended_turn_refuses_a_second_one_at_once():
    """ChatSession holds no lock across a yield: while a turn is suspended (a slow client), a
    second turn, a reset and a replay fail at once with Busy (409) instead of hanging; after the
    turn is closed the session answers again."""
    from tests.fakes.chat import fake_agent

    session = fake_agent(Settings(chat_explain=False)).session()
    turn = session.send("a funny animated movie")
    next(turn)
    outcome: list = []
    for call in (lambda: next(session.send("something scary")), session.reset,
                 lambda: session.replay({"role": "user", "content": "hi"})):
        worker = threading.Thread(target=lambda c=call: outcome.append(_raises(c)), daemon=True)
        worker.start()
        worker.join(timeout=2)
        assert not worker.is_alive(), "a second call hangs on the session's lock"
    assert outcome == [Busy, Busy, Busy]
    turn.close()
    assert [e["type"] for e in session.send("a funny animated movie")][-1] == "done"


def _raises(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test compares the type
        return type(exc)
    return None


def test_session_history_is_bounded():
    from tests.fakes.chat import fake_agent

    session = fake_agent(Settings(chat_explain=False, chat_session_max_turns=4)).session()
    for text in ("a funny movie", "something scary", "only after 2000", "not that one", "a drama"):
        list(session.send(text))
    assert len(session.history) == 4 and session.history[-1]["role"] == "assistant"


# --- SIGTERM ----------------------------------------------------------------------------------------


def test_sigterm_stops_the_server_within_seconds_while_a_turn_runs(tmp_path):
    """`recsage serve`'s uvicorn setup (agent.cli.serve.run_server) with a turn inside a minute-long
    model step: the process still exits within a few seconds of SIGTERM."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.http_server", str(port)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        sock, head = _start_turn(url, "hang")
        assert b" 200 " in head.split(b"\r\n")[0]
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert time.monotonic() - start < 5
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
