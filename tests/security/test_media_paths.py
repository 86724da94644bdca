"""Hostile media references (issue 15): chat text naming the server's files, catalog media paths
outside their folder, non-image posters, image URLs, a giant CSV field, partial stores, and an
OpenAI message that carries only an image. Real uvicorn servers on loopback, real OCR on small
generated PNGs, real Chroma; fakes where the models are not the point."""

from __future__ import annotations

import base64
import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from agent.chat.tools import ToolContext, load_tools
from agent.core.config import Settings
from agent.ingest.catalog import Item, load_catalog, load_movielens
from agent.server.app import create_app
from agent.server.io import BackgroundServer
from tests.fakes.chat import fake_agent

SECRET = "SECRET PLANS"


def text_png(path: Path, text: str) -> Path:
    """A PNG with large dark text OCR reads in well under a second."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (640, 160), "white")
    ImageDraw.Draw(image).text((20, 40), text, fill="black", font=ImageFont.load_default(size=56))
    image.save(path)
    return path


def chat_turn(url: str, message: str) -> tuple[str, str]:
    """(the answer, the whole response) of one /v1/chat turn and of one /v1/chat/completions call."""
    chat = httpx.post(url + "/v1/chat", json={"message": message}, timeout=120)
    assert chat.status_code == 200, chat.text
    done = [json.loads(line[6:]) for line in chat.text.splitlines() if line.startswith("data: ")][-1]
    completion = httpx.post(url + "/v1/chat/completions", timeout=120,
                            json={"messages": [{"role": "user", "content": message}]})
    assert completion.status_code == 200, completion.text
    answer = completion.json()["choices"][0]["message"]["content"]
    return done["answer"] + "\n" + answer, chat.text + completion.text


# --- 1. chat text never opens a server file --------------------------------------------------


@pytest.fixture(scope="module")
def chat_server(real_settings):
    """The real chat agent and built-in tools (real OCR and Whisper), a fake recommender, rule-based
    tool choice, on a real uvicorn server without a token (loopback)."""
    settings = real_settings.model_copy(update={"chat_explain": False})
    agent = fake_agent(settings)
    with BackgroundServer(create_app(agent.recommender, agent, settings)) as url:
        yield url


def _messages(png: Path, wav: Path) -> list[str]:
    home_relative = "~/" + os.path.relpath(png, Path.home())
    return [f"read the poster in {png}", f"what does {png} say?", f"transcribe {wav}",
            f"read the poster in {os.path.relpath(png)}", f"read the poster in {home_relative}"]


@pytest.mark.integration
def test_chat_text_naming_a_server_file_reads_nothing_and_answers_the_same(chat_server, tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is required for voice-note tests (apt-get install espeak-ng)")
    png = text_png(tmp_path / "note.png", SECRET)
    wav = tmp_path / "voicemail.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), "the launch code is banana"], check=True)
    present = {m: chat_turn(chat_server, m) for m in _messages(png, wav)}
    for message, (_, body) in present.items():
        lowered = body.lower()
        assert "secret" not in lowered and "plans" not in lowered and "banana" not in lowered, message
        assert '"describe_image"' not in body and '"transcribe_audio"' not in body, message
        assert str(tmp_path) not in body.replace(message, "")  # no server path beyond the echoed message
    png.unlink()
    wav.unlink()
    for message, (answer, _) in present.items():
        assert chat_turn(chat_server, message)[0] == answer, message  # existence is not revealed


def test_media_tools_refuse_a_path_that_was_not_attached_without_looking_at_it(tmp_path, monkeypatch):
    tools = load_tools()
    existing = text_png(tmp_path / "here.png", SECRET)
    context = ToolContext(recommender=None, settings=Settings(home=tmp_path / "home"))
    for name in ("describe_image", "transcribe_audio"):
        monkeypatch.setattr(type(tools[name].obj), "converter", lambda self, s: pytest.fail("a converter was built"))
        seen = [tools[name](context, {"path": str(p)}).text
                for p in (existing, tmp_path / "missing.png", "~/x.png", "../../etc/passwd.png")]
        assert len(set(seen)) == 1 and "attach" in seen[0] and str(tmp_path) not in seen[0], seen


@pytest.mark.integration
def test_the_local_repl_still_reads_a_named_file(real_settings, tmp_path, monkeypatch):
    """`recsage chat` (and only it) builds its agent with local_files: a path typed there is read."""
    import click

    from agent.cli import chat as cli_chat
    from tests.fakes.chat import FakeRecommender

    monkeypatch.setattr("agent.recommend.Recommender", lambda *a, **k: FakeRecommender())
    monkeypatch.setattr(cli_chat, "project", lambda ctx: None)
    monkeypatch.setattr(cli_chat, "chat_catalog", lambda ctx: None)
    ctx = click.Context(click.Command("chat"), obj={"settings_factory": lambda: Settings()})
    assert cli_chat.build_agent(ctx).local_files is True
    agent = fake_agent(real_settings.model_copy(update={"chat_explain": False}))
    agent.local_files = True
    png = text_png(tmp_path / "note.png", SECRET)
    events = list(agent.session().send(f"read the poster in {png}"))
    read = next(e for e in events if e["type"] == "observation")
    assert read["ok"] and "SECRET" in read["text"].upper()


@pytest.mark.integration
def test_an_openai_message_with_only_an_image_is_answered(chat_server, tmp_path):
    png = text_png(tmp_path / "poster.png", "TOY STORY")
    url = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
    response = httpx.post(chat_server + "/v1/chat/completions", timeout=120, json={"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["recsage"]["tool"] in ("similar_items", "recommend") and body["recsage"]["items"]
    assert str(Path(os.environ.get("TMPDIR", "/tmp"))) not in response.text  # the upload's temp path stays private
    empty = httpx.post(chat_server + "/v1/chat/completions", timeout=60,
                       json={"messages": [{"role": "user", "content": []}]})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]["message"]


# --- 2. catalog media paths stay in the catalog's folder ---------------------------------------


def _outside_catalog(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "catalog"
    (folder / "posters").mkdir(parents=True)
    outside = text_png(tmp_path / "outside.png", SECRET)
    (folder / "posters" / "link.png").symlink_to(outside)
    return folder, outside


def test_catalog_media_outside_its_folder_is_a_row_error_and_the_row_is_kept(tmp_path):
    folder, outside = _outside_catalog(tmp_path)
    rows = [{"id": "1", "title": "Up", "image": "../outside.png"},
            {"id": "2", "title": "Jaws", "image": str(outside)},
            {"id": "3", "title": "Heat", "image": "posters/link.png"},
            {"id": "4", "title": "Alien", "audio": "../../../../etc/passwd"},
            {"id": "5", "title": "Fargo", "image": "posters/../posters/ok.png"}]
    path = folder / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = load_catalog(path)
    assert [i.id for i in loaded.items] == ["1", "2", "3", "4", "5"]
    assert all(i.image is None and i.audio is None for i in loaded.items[:4])
    assert loaded.items[4].image == str((folder / "posters" / "ok.png").resolve())
    assert [(r.line, r.kept) for r in loaded.rejected] == [(1, True), (2, True), (3, True), (4, True)]
    assert all("outside the catalog's folder" in str(r) for r in loaded.rejected)
    assert str(loaded.rejected[0]).startswith(f"{path}:1: ")


def test_movielens_posters_outside_the_posters_folder_are_refused(tmp_path):
    movielens, posters = tmp_path / "ml", tmp_path / "posters"
    movielens.mkdir()
    posters.mkdir()
    text_png(tmp_path / "secret.jpg", SECRET)
    text_png(posters / "1.jpg", "TOY STORY")
    (movielens / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Comedy\n"
                                          "../secret,Evil (2000),Drama\n")
    loaded = load_movielens(movielens, posters)
    assert loaded.items[0].image == str((posters / "1.jpg").resolve()) and loaded.items[1].image is None
    assert len(loaded.rejected) == 1 and "outside the --posters folder" in loaded.rejected[0].reason


# --- 4. a giant CSV field is one row error --------------------------------------------------------


def test_a_csv_field_over_the_limit_is_a_row_error_and_the_rest_loads(tmp_path):
    path = tmp_path / "c.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "title", "plot"])
        writer.writerow(["1", "Up", "short"])
        writer.writerow(["2", "Huge", "x\n2,Injected,row\n" * 20_000])  # 340,000 characters over many lines
        writer.writerow(["3", "Heat", "fine"])
        writer.writerow(["4", "Big but allowed", "y" * 200_000])  # over Python's own 131,072 default
    before = csv.field_size_limit()
    loaded = load_catalog(path, max_field_chars=300_000)
    assert [i.id for i in loaded.items] == ["1", "3", "4"]  # nothing of the huge field became a row
    assert len(loaded.rejected) == 1 and "field 'plot' is 340,000 characters" in loaded.rejected[0].reason
    assert "catalog_max_field_chars" in loaded.rejected[0].reason and csv.field_size_limit() == before
    assert [i.id for i in load_catalog(path).items] == ["1", "2", "3", "4"]  # the default allows 1,000,000


def test_a_huge_field_in_movielens_tags_or_links_costs_that_row_only(tmp_path):
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "movies.csv").write_text("movieId,title,genres\n1,Up (2009),Animation\n2,Heat (1995),Crime\n")
    (folder / "tags.csv").write_text("userId,movieId,tag,timestamp\n"
                                     f"1,1,{'z' * 200_000},0\n1,1,balloons,0\n1,2,heist,0\n")
    (folder / "links.csv").write_text(f"movieId,imdbId,tmdbId\n1,{'9' * 200_000},1\n2,113277,949\n")
    loaded = load_movielens(folder, max_field_chars=100_000)
    tags = {i.id: i.tags for i in loaded.items}
    assert tags == {"1": ("balloons",), "2": ("heist",)}


# --- 2 and 3 on a real store: ingest, poster route, URLs; 5: partial stores ------------------------


def _tiny_movielens(folder: Path, n_items: int = 12, n_users: int = 8) -> Path:
    """Each user rates 9 of the 12 items (user u leaves out u+1, u+5, u+9), so every item keeps 6
    ratings through the 5-core; odd items are comedies, item i is from 1990 + i."""
    folder.mkdir()
    with open(folder / "movies.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["movieId", "title", "genres"])
        for i in range(1, n_items + 1):
            writer.writerow([i, f"Movie {i} ({1990 + i})", "Comedy" if i % 2 else "Drama"])
    rows = [(u, i, 4.0, u * 100 + (i * 7 + u) % n_items) for u in range(1, n_users + 1)
            for i in range(1, n_items + 1) if i not in {(u + 4 * j) % n_items + 1 for j in range(3)}]
    pd.DataFrame(rows, columns=["userId", "movieId", "rating", "timestamp"]).to_csv(folder / "ratings.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def partial_store(tmp_path_factory, real_settings):
    """A real Chroma store of the first 8 of 12 items (as `ingest --limit 8`), ingested with the real
    MiniLM embedder and real OCR, from a catalog whose posters include hostile ones."""
    from agent.ingest.pipeline import Pipeline, build_text_embedder, ingest
    from agent.ingest.store import Store
    from plugins.ocr import OcrConverter

    root = tmp_path_factory.mktemp("partial")
    movielens = _tiny_movielens(root / "ml")
    folder, outside = _outside_catalog(root)
    text_png(folder / "posters" / "1.png", "MOVIE ONE")
    (folder / "posters" / "2.png").write_text("root:x:0:0:not an image\n")
    images = {"1": "posters/1.png", "2": "posters/2.png", "3": "../outside.png", "4": str(outside),
              "5": "http://127.0.0.1:9/poster.png", "6": "http://169.254.169.254/latest/meta-data"}
    rows = [{"id": str(i), "title": f"Movie {i}", "year": 1990 + i, "genres": "Comedy" if i % 2 else "Drama",
             **({"image": images[str(i)]} if str(i) in images else {})} for i in range(1, 13)]
    (folder / "c.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    loaded = load_catalog(folder / "c.jsonl")
    settings = real_settings.model_copy(update={"chat_explain": False, "rerank_requests": False})
    pipeline = Pipeline(build_text_embedder(settings), [OcrConverter(settings)], [], [])
    store = Store(root / "store")
    import agent.ingest.pipeline as pipeline_module

    original, pipeline_module.build_pipeline = pipeline_module.build_pipeline, lambda s, *_: pipeline
    try:
        report = ingest(loaded.items[:8], store, settings, rejected=loaded.rejected, progress=False)
    finally:
        pipeline_module.build_pipeline = original
    return root / "store", movielens, settings, report, loaded


@pytest.mark.integration
def test_ingest_stores_only_accepted_media_and_never_fetches_urls(partial_store):
    from agent.ingest.store import Store

    store_dir, _, _, report, loaded = partial_store
    assert {r.line for r in loaded.rejected} == {3, 4} and report.total == 8
    assert {f.id for f in report.failed} == {"2"}  # OCR refused the text file named as a poster
    meta = {i: r["metadata"] for i, r in Store(store_dir).get([str(i) for i in range(1, 9)]).items()}
    assert meta["1"]["image"].endswith("1.png")
    assert all("image" not in meta[i] for i in ("2", "3", "4", "5", "6"))
    assert meta["5"]["image_url"] == "http://127.0.0.1:9/poster.png"  # kept as metadata, never fetched
    assert meta["6"]["image_url"].startswith("http://169.254.169.254/")


@pytest.fixture(scope="module")
def partial_server(partial_store):
    from agent.chat.agent import ChatAgent
    from agent.chat.tool_choice import ToolChooser
    from agent.cli.base import project_chat_catalog
    from agent.core.project import movielens_project
    from agent.recommend import Recommender

    store_dir, movielens, settings, _, _ = partial_store
    project = movielens_project(movielens, store=store_dir)
    recommender = Recommender(project, settings, system="content")
    agent = ChatAgent(recommender, settings, chooser=ToolChooser(None, mode="rules"),
                      catalog=project_chat_catalog(project, settings))
    with BackgroundServer(create_app(recommender, agent, settings)) as url:
        yield url, recommender


@pytest.mark.integration
def test_the_poster_route_serves_only_verified_images(partial_server, partial_store):
    from agent.ingest.store import Store

    url, _ = partial_server
    good = httpx.get(url + "/v1/items/1/poster", timeout=60)
    assert good.status_code == 200 and good.headers["content-type"] == "image/png"
    for item in ("2", "3", "4", "5", "6"):
        refused = httpx.get(url + f"/v1/items/{item}/poster", timeout=60)
        assert refused.status_code == 404 and refused.json()["error"]["message"] == f"item {item} has no poster"
    # a store written before the fix (or edited) naming a non-image as a poster: still not served
    store = Store(partial_store[0])
    record = store.get(["7"])["7"]
    store.collection("items").update(ids=["7"], metadatas=[{**record["metadata"], "image": "/etc/passwd"}])
    assert httpx.get(url + "/v1/items/7/poster", timeout=60).status_code == 404
    assert httpx.get(url + "/v1/items/5", timeout=60).json()["image_url"] == "http://127.0.0.1:9/poster.png"
    missing = httpx.get(url + "/v1/items/11", timeout=60)  # in the ratings, not in the store
    assert missing.status_code == 404 and str(partial_store[0]) not in missing.text


@pytest.mark.integration
def test_genre_filters_work_on_a_partial_store_over_http_and_in_chat(partial_server):
    url, _ = partial_server
    # user 2 has not rated 3, 7 (stored comedies) and 11 (a comedy the partial ingest left out)
    picks = httpx.post(url + "/v1/recommend", json={"user": "2", "genres": ["Comedy"], "k": 3}, timeout=120)
    assert picks.status_code == 200, picks.text
    assert sorted(i["id"] for i in picks.json()["items"]) == ["3", "7"]
    # user 3 has not rated 4 (1994), 8 (1998) and 12 (2002, not stored)
    years = httpx.post(url + "/v1/recommend", json={"user": "3", "year_min": 1995, "k": 2}, timeout=120)
    assert years.status_code == 200 and [i["id"] for i in years.json()["items"]] == ["8"]
    answer, body = chat_turn(url, "user 2: recommend comedies")
    assert "KeyError" not in body and "failed" not in answer and "(id 3)" in answer and "(id 11)" not in answer


def test_filters_on_a_partial_store_treat_missing_items_as_unfiltered_out(tmp_path):
    """Unit level: a real Chroma store holding half the interaction data's items."""
    from agent.ingest.store import Store
    from agent.retrieval.interactions import split_from_interactions
    from agent.retrieval.retriever import Filters, Retriever

    rows = [(u, i, 4.0, u * 10 + i) for u in (1, 2, 3) for i in (10, 11, 12, 13, 14, 15)]
    split = split_from_interactions(pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]))
    store = Store(tmp_path)
    stored = ["10", "11", "12"]
    vectors = np.eye(3, dtype=np.float32)
    store.upsert(stored, vectors, ["card"] * 3, [{"title": f"T{i}", "genres": json.dumps(["Comedy"]), "year": 2000}
                                                 for i in stored])
    retriever = Retriever(store, tmp_path, split, Settings(home=tmp_path))
    history = np.array([split.item_index["10"]])
    for filters in (Filters({"genres": ("Comedy",)}), Filters(year_min=1990), Filters(year_max=2010), Filters()):
        got, _ = retriever.recommend(history, k=5, system="content", filters=filters)
        assert {c.id for c in got} == {"11", "12"} and all(c.title for c in got)
    assert retriever.item_meta[split.item_index["14"]] == {}


def test_catalog_image_urls_are_never_fetched(tmp_path, fake_settings, monkeypatch):
    """Unit level, with the network refused: a URL (loopback, private, link-local or public) in a
    catalog reaches no converter and no socket; it is stored as image_url."""
    import socket

    from agent.ingest.pipeline import Pipeline, ingest
    from agent.ingest.store import Store
    from tests.conftest import FakeEmbedder, FakeImageReader

    def refuse(*args, **kwargs):
        raise AssertionError(f"ingest tried to connect: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    reader = FakeImageReader()
    monkeypatch.setattr("agent.ingest.pipeline.build_pipeline",
                        lambda s, *_: Pipeline(FakeEmbedder(), [reader], [], notes=[]))
    urls = ["http://127.0.0.1/a.png", "https://10.0.0.1/b.png", "http://169.254.169.254/c", "https://example.org/d.jpg"]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps({"id": str(n), "title": f"M{n}", "image": u}) for n, u in enumerate(urls)))
    loaded = load_catalog(path)
    assert not loaded.rejected and all(i.image is None for i in loaded.items)
    store = Store(tmp_path / "store")
    report = ingest(loaded.items, store, fake_settings, progress=False)
    assert reader.calls == 0 and not report.failed
    got = store.get([str(n) for n in range(len(urls))])
    assert [got[str(n)]["metadata"]["image_url"] for n in range(len(urls))] == urls
    assert all("image" not in got[str(n)]["metadata"] for n in range(len(urls)))
    # items made by any other loader, with the URL still in `image`: ingest itself never fetches it
    direct = [Item(id=f"d{n}", title=f"D{n}", image=u) for n, u in enumerate(urls)]
    report = ingest(direct, store, fake_settings, progress=False)
    assert reader.calls == 0 and not report.failed
    got = store.get([f"d{n}" for n in range(len(urls))])
    assert [got[f"d{n}"]["metadata"]["image_url"] for n in range(len(urls))] == urls
