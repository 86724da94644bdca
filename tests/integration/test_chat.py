"""The chat on the real stack: SmolLM2 tool choice, MiniLM/BM25 search in real Chroma, the LoRA
reranker, the explainer, Whisper on an espeak-ng voice note, and `recsage chat` itself.

The shared ``movielens_store`` has no trained retriever, so the recommender here uses the content
system for history-based calls ("more like the second one"); request-only calls use the hybrid
text search as in production.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import run_recsage

pytestmark = pytest.mark.integration

DARK = {"Horror", "Thriller", "War", "Crime", "Film-Noir"}


@pytest.fixture(scope="module")
def agent(movielens_store, real_settings):
    from agent.chat.agent import ChatAgent
    from agent.cli.base import project_chat_catalog
    from agent.core.project import movielens_project
    from agent.recommend import Recommender

    project = movielens_project(movielens_store[1], store=movielens_store[0])
    settings = real_settings.model_copy(update={"chat_explain": False})
    return ChatAgent(Recommender(project, settings, system="content"), settings,
                     catalog=project_chat_catalog(project, settings))


def send(session, text: str, **media) -> dict:
    events = list(session.send(text, **media))
    done = events[-1]
    assert done["type"] == "done"
    return {**done, "events": events}


def test_refinements_change_the_next_answer_on_real_models(agent):
    session = agent.session()
    first = send(session, "a funny animated movie about toys")
    assert first["tool"] == "recommend" and len(first["items"]) == 10
    assert "Toy Story" in {i["title"] for i in first["items"]}
    first_ids = [i["id"] for i in first["items"]]

    later = send(session, "only after 2000")
    assert later["tool"] == "filter_items" and later["items"]
    assert all(i["year"] and i["year"] >= 2001 for i in later["items"])

    shown = [i["id"] for i in later["items"]]
    without = send(session, "not that one")
    assert shown[0] not in {i["id"] for i in without["items"]}
    assert all(i["year"] >= 2001 for i in without["items"])  # the year filter still holds

    similar = send(session, "more like the second one")
    assert similar["tool"] == "similar_items"
    second = without["items"][1]["id"]
    assert similar["items"] and second not in {i["id"] for i in similar["items"]}
    assert similar["request"]["focus"] == second
    assert first_ids != [i["id"] for i in similar["items"]]


def test_something_lighter_drops_dark_genres(agent):
    session = agent.session()
    dark = send(session, "a brutal serial killer thriller")
    assert any(DARK & set(i["facets"].get("genres", [])) for i in dark["items"])
    light = send(session, "something lighter")
    assert light["tool"] == "recommend" and light["items"]
    assert not any(DARK & set(i["facets"].get("genres", [])) for i in light["items"])


def test_item_details_and_tool_errors_are_answers(agent):
    session = agent.session()
    details = send(session, "who directed The Matrix?")
    assert details["tool"] == "item_details" and "Matrix" in details["answer"]
    unknown = send(agent.session(user="999999"), "recommend me something for tonight")
    assert unknown["answer"].startswith("Sorry") and "unknown user" in unknown["answer"]


def test_answers_cite_explained_items_and_stream(movielens_store, real_settings):
    from agent.chat.agent import ChatAgent
    from agent.cli.base import project_chat_catalog
    from agent.core.project import movielens_project
    from agent.recommend import Recommender

    project = movielens_project(movielens_store[1], store=movielens_store[0])
    agent = ChatAgent(Recommender(project, real_settings, system="content"), real_settings,
                      catalog=project_chat_catalog(project, real_settings))
    result = send(agent.session(), "a scary movie about ghosts in a haunted house")
    tokens = [e["text"] for e in result["events"] if e["type"] == "token"]
    assert len(tokens) > 20 and "".join(tokens) == result["answer"]
    explained = [i for i in result["items"] if i.get("explanation")]
    assert explained, "no item was explained"
    for item in explained:
        assert f"(id {item['id']})" in result["answer"] and item["explanation"] in result["answer"]


def test_a_voice_note_is_transcribed_then_answered(agent, tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required for voice-note tests (apt-get install espeak-ng)")
    voice = tmp_path / "note.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(voice), "I want a movie about sharks in the ocean"],
                   check=True)
    result = send(agent.session(), "", audio=voice)
    tools = [e["name"] for e in result["events"] if e["type"] == "tool"]
    assert tools[0] == "transcribe_audio" and len(tools) == 2
    heard = next(e["text"] for e in result["events"] if e["type"] == "observation")
    assert "shark" in heard.lower() and "shark" in result["request"]["query"].lower()
    assert result["tool"] == "recommend" and result["items"]


def test_a_poster_is_read_then_answered(agent, shared_data):
    result = send(agent.session(), "", image=shared_data / "posters" / "1.jpg")  # Toy Story's poster
    tools = [e["name"] for e in result["events"] if e["type"] == "tool"]
    assert tools[0] == "describe_image" and len(tools) == 2
    read = next(e["text"] for e in result["events"] if e["type"] == "observation")
    assert "story" in read.lower()
    assert result["items"] and "Toy Story" in result["answer"]


def test_recsage_chat_one_shot_json_and_bad_input(movielens_store):
    store, movielens = movielens_store
    out = run_recsage("chat", "--store", store, "--movielens", movielens, "--no-explain", "--json",
                      "tell me about Toy Story")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["tool"] == "item_details" and "Toy Story" in data["answer"]
    assert data["calls"][0]["name"] == "item_details" and data["calls"][0]["ok"]
    empty = run_recsage("chat", "--store", store, "--movielens", movielens, "   ")
    assert empty.returncode == 2 and "message is empty" in empty.stderr and "Traceback" not in empty.stderr


def test_through_the_server_queues_items_come_before_their_explanations(movielens_store, real_settings):
    """The real Recommender behind the server's model fronts (agent/server/queues.py): the turn's
    items go out before any explanation is generated, each explanation follows as its own event,
    and the done event's items and answer carry them (the Recommender's deferral contract)."""
    from agent.chat.agent import ChatAgent
    from agent.cli.base import project_chat_catalog
    from agent.core.project import movielens_project
    from agent.recommend import Recommender
    from agent.server.queues import ModelQueues

    project = movielens_project(movielens_store[1], store=movielens_store[0])
    recommender = Recommender(project, real_settings, system="content")
    queues = ModelQueues(real_settings)
    recommender.wrap_part = queues.wrap
    agent = ChatAgent(recommender, real_settings, catalog=project_chat_catalog(project, real_settings))
    try:
        result = send(agent.session(), "a scary movie about ghosts in a haunted house")
    finally:
        queues.close()
    kinds = [e["type"] for e in result["events"]]
    assert "explanation" in kinds and kinds.index("items") < kinds.index("explanation")
    shown = result["events"][kinds.index("items")]["items"]
    assert shown and all(item["explanation"] is None for item in shown)
    reasons = {e["id"]: e["explanation"] for e in result["events"] if e["type"] == "explanation"}
    top = result["items"][:real_settings.chat_explained_items]  # the chat explains its top items only
    assert reasons == {i["id"]: i["explanation"] for i in top}
    assert all(i["explanation"] is None for i in result["items"][len(top):])
    assert all(text in result["answer"] for text in reasons.values())
    assert "".join(e["text"] for e in result["events"] if e["type"] == "token") == result["answer"]
    assert queues.stats()["explain"]["rows"] == len(reasons)
