"""Two `recsage serve` replicas behind one `chroma run` and one `redis-server` (issue 14, item 4).

The generated shop (tests/fakes/shop.py) is ingested into the Chroma server and its fast retriever
trained once; then two real server processes on two ports read the same project (store URL and
artifacts folder) and keep chat sessions in the same Redis. A conversation hops between them and every
refinement applies to the state the other replica left; identical /v1/recommend bodies get identical
answers from both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.fakes.chroma_server import running_chroma
from tests.fakes.redis_server import needs_redis, running_redis
from tests.fakes.server import wait_healthy
from tests.fakes.shop import generate_shop
from tests.fakes.shop_cli import build
from tests.fakes.store import free_port

pytestmark = [pytest.mark.integration, pytest.mark.server]
SHOP = {"products": 64, "users": 96, "seed": 1, "events_per_user": (6, 10)}
# Explanations are LLM text and not what this test is about; a replica must only continue the state.
CONFIG = "threads = 1\nchat_explain = false\nrerank_depth = 10\n"
RECOMMEND = {"user": "C0003", "query": "noise cancelling headphones for the commute", "k": 8}


@contextmanager
def replica(project_file: Path, config: Path, log: Path, env: dict, *flags: str) -> Iterator[str]:
    """One `recsage serve` process (warm: models load before it answers); yields its base URL."""
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "recsage"), "--project", str(project_file), "--config", str(config),
           "serve", "--port", str(port), *flags]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(proc, base, seconds=300, log=log)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=60)



@pytest.fixture(scope="module")
def replicas(tmp_path_factory, real_settings):
    """(shop, redis URL, replica A's URL, replica B's URL). A reads the store's address from
    --session-store, B from the environment."""
    needs_redis()
    root = tmp_path_factory.mktemp("replicas")
    with ExitStack() as stack:
        chroma = stack.enter_context(running_chroma(root / "chroma"))
        (root / "redis").mkdir()
        redis_url = stack.enter_context(running_redis(root / "redis"))
        shop = generate_shop(root / "shop", store_url=chroma, **SHOP)
        build(shop)
        config = root / "serve.toml"
        config.write_text(CONFIG)
        env = {k: v for k, v in os.environ.items() if k not in ("RECSAGE_TOKEN", "RECSAGE_SESSION_STORE")}
        env["RECSAGE_HOME"] = str(real_settings.home)
        a = stack.enter_context(replica(shop.project_file, config, root / "a.log", env, "--session-store", redis_url))
        b = stack.enter_context(replica(shop.project_file, config, root / "b.log", {**env, "RECSAGE_SESSION_STORE": redis_url}))
        yield shop, redis_url, a, b


def chat(base: str, message: str, session_id: str | None = None) -> tuple[str, dict]:
    """One /v1/chat turn: the session id of its first event and its final "done" event."""
    body = {"message": message, **({"session_id": session_id} if session_id else {})}
    with httpx.stream("POST", base + "/v1/chat", json=body, timeout=300) as response:
        assert response.status_code == 200, response.read()
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert events[0]["type"] == "session" and events[-1]["type"] == "done", events[-3:]
    return events[0]["session_id"], events[-1]


def ids(done: dict) -> list[str]:
    return [item["id"] for item in done["items"]]


def test_a_chat_refined_on_the_other_replica(replicas):
    shop, _, a, b = replicas
    session_id, first = chat(a, "show me headphones")
    shown = ids(first)
    assert len(shown) >= 3 and all(shop.category_of(i) == "Headphones" for i in shown), shown

    same, second = chat(b, "not the second one", session_id)
    assert same == session_id
    assert shown[1] not in ids(second) and shown[0] in ids(second), (shown, ids(second))
    assert all(shop.category_of(i) == "Headphones" for i in ids(second))
    assert second["request"]["excluded"] == [shown[1]]

    brand = shop.brand_of(shown[0])
    _, third = chat(a, f"just {brand}", session_id)  # back on A: B's exclusion and A's category both hold
    assert third["items"] and shown[1] not in ids(third)
    assert all(shop.category_of(i) == "Headphones" and shop.brand_of(i) == brand for i in ids(third)), ids(third)
    assert third["request"]["facets"] == {"category": ["Headphones"], "brand": [brand]}
    assert third["request"]["excluded"] == [shown[1]]


def test_a_session_deleted_on_one_replica_is_gone_on_the_other(replicas):
    _, _, a, b = replicas
    session_id, _ = chat(a, "show me backpacks")
    assert httpx.delete(f"{b}/v1/chat/{session_id}", timeout=30).status_code == 200
    assert httpx.delete(f"{a}/v1/chat/{session_id}", timeout=30).status_code == 404
    new_id, _ = chat(a, "not the second one", session_id)
    assert new_id != session_id


def test_identical_recommend_bodies_get_identical_answers_from_both(replicas):
    _, _, a, b = replicas
    answers = []
    for n in range(20):
        response = httpx.post((a, b)[n % 2] + "/v1/recommend", json=RECOMMEND, timeout=300)
        assert response.status_code == 200, response.text
        assert response.json()["reranked"]  # the whole path, the LLM included, on both replicas
        answers.append([(i["id"], i["rank"], i["score"]) for i in response.json()["items"]])
    assert len(answers[0]) == RECOMMEND["k"]
    assert all(answer == answers[0] for answer in answers), [a[:3] for a in answers]
