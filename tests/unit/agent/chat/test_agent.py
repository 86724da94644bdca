"""The chat loop and its multi-turn state on a fake recommender with rule-based tool choice (no model)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.chat.tool_choice import ToolChooser
from agent.chat.tools import Observation, Tool, load_tools
from agent.core.config import Settings
from agent.core.errors import InputError
from agent.core.project import CatalogWords
from tests.fakes.chat import SHOP, fake_agent


def turn(session, text: str, **media) -> dict:
    events = list(session.send(text, **media))
    assert events[-1]["type"] == "done"
    return {"events": events, **events[-1]}


def ids(result: dict) -> list[str]:
    return [i["id"] for i in result["items"]]


def test_events_stream_in_order_and_tokens_make_the_answer():
    session = fake_agent().session()
    result = turn(session, "funny animated movies about toys")
    kinds = [e["type"] for e in result["events"]]
    assert kinds[:3] == ["tool", "observation", "items"] and kinds[-1] == "done"
    assert kinds.count("token") > 5
    tokens = "".join(e["text"] for e in result["events"] if e["type"] == "token")
    assert tokens == result["answer"]
    assert result["tool"] == "recommend" and set(ids(result)) >= {"1", "8"}
    assert all("Animation" in i["facets"]["genres"] for i in result["items"])  # "animated" became a genre filter
    assert all(f"(id {i})" in result["answer"] for i in ids(result))  # every pick cited
    assert session.history[-1] == {"role": "assistant", "content": result["answer"]}


def test_answers_cite_explanations_when_explaining():
    session = fake_agent(Settings(chat_explain=True)).session()
    result = turn(session, "funny animated movies about toys")
    assert "Toy Story fits." in result["answer"]
    quiet = fake_agent(Settings(chat_explain=False)).session()
    assert "fits." not in turn(quiet, "funny animated movies about toys")["answer"]


def test_something_lighter_changes_the_next_answer():
    agent = fake_agent()
    session = agent.session()
    first = turn(session, "movies with funny slasher gore")
    assert {"3", "7"} & set(ids(first))  # horror in the first answer
    lighter = turn(session, "something lighter")
    assert lighter["tool"] == "recommend"
    assert not {"3", "7"} & set(ids(lighter))
    assert "feel-good" in agent.recommender.calls[-1]["query"]
    assert "slasher" in agent.recommender.calls[-1]["query"]  # still the same request, refined


def test_not_that_one_excludes_the_first_pick_and_keeps_the_request():
    agent = fake_agent()
    session = agent.session()
    first = turn(session, "funny animated movies about toys")
    top = ids(first)[0]
    second = turn(session, "not that one")
    assert top not in ids(second) and top in agent.recommender.calls[-1]["exclude"]
    assert agent.recommender.calls[-1]["query"].startswith("funny animated")
    assert session.state.excluded == [top]


def test_not_the_second_one_excludes_that_position():
    session = fake_agent().session()
    first = turn(session, "funny animated movies about toys")
    result = turn(session, "not the second one")
    assert ids(first)[1] not in ids(result) and ids(first)[0] in ids(result)


def test_more_like_the_second_one_seeds_similar_items():
    agent = fake_agent()
    session = agent.session()
    first = turn(session, "funny animated movies about toys")
    result = turn(session, "more like the second one")
    assert result["tool"] == "similar_items"
    assert agent.recommender.calls[-1]["history"] == [ids(first)[1]]
    assert ids(first)[1] not in ids(result)
    assert "Movies like" in result["answer"]


def test_only_after_2000_filters_the_current_request():
    agent = fake_agent()
    session = agent.session()
    first = turn(session, "funny animated movies about toys")
    assert any(i["year"] < 2001 for i in first["items"])
    result = turn(session, "only after 2000")
    assert result["tool"] == "filter_items"
    assert result["items"] and all(i["year"] >= 2001 for i in result["items"])
    assert agent.recommender.calls[-1]["query"].startswith("funny animated")
    assert result["request"]["year_min"] == 2001


def test_a_new_request_drops_old_refinements():
    session = fake_agent().session()
    turn(session, "funny animated movies about toys")
    turn(session, "only after 2000")
    turn(session, "not that one")
    result = turn(session, "science fiction about dreams and virtual reality")
    assert result["request"]["year_min"] is None and result["request"]["excluded"] == []
    assert ids(result)[0] in {"5", "9"}


def test_details_then_that_one_refers_to_the_detailed_item():
    agent = fake_agent()
    session = agent.session()
    turn(session, "funny animated movies about toys")
    details = turn(session, "tell me more about Shrek")
    assert details["tool"] == "item_details" and "Shrek (2001)" in details["answer"]
    turn(session, "not that one")
    assert "4" in agent.recommender.calls[-1]["exclude"]


def test_tool_errors_become_an_answer_not_a_crash():
    session = fake_agent().session(user="999")
    result = turn(session, "recommend me a good thriller")
    assert result["answer"].startswith("Sorry, I could not do that.") and "unknown user" in result["answer"]
    assert result["items"] == []
    observation = next(e for e in result["events"] if e["type"] == "observation")
    assert observation["ok"] is False


def test_missing_item_reference_is_an_answer_that_says_what_is_missing():
    result = turn(fake_agent().session(), "more like the second one")  # nothing was shown yet
    assert "Sorry" in result["answer"] or result["tool"] != "similar_items"


def test_bad_input_raises_at_the_call():
    session = fake_agent().session()
    with pytest.raises(InputError, match="empty"):
        session.send("   ")
    with pytest.raises(InputError, match="not found"):
        session.send("hi", image="/nonexistent/poster.jpg")


def test_reset_forgets_the_conversation_but_not_the_user():
    session = fake_agent().session(user="1")
    turn(session, "funny animated movies about toys")
    session.reset()
    assert session.history == [] and session.state.shown == [] and session.state.user == "1"


def test_session_from_messages_rebuilds_state_without_running_tools():
    agent = fake_agent()
    first = turn(agent.session(), "funny animated movies about toys")
    calls = len(agent.recommender.calls)
    session, last = agent.session_from_messages([
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "funny animated movies about toys"},
        {"role": "assistant", "content": first["answer"]},
        {"role": "user", "content": [{"type": "text", "text": "more like the second one"}]},
    ])
    assert last == "more like the second one" and len(agent.recommender.calls) == calls
    assert [i["id"] for i in session.state.shown] == ids(first)
    result = turn(session, last)
    assert agent.recommender.calls[-1]["history"] == [ids(first)[1]] and result["tool"] == "similar_items"


@pytest.mark.parametrize("messages", [[], [{"role": "assistant", "content": "hi"}], [{"role": "bot", "content": "x"}],
                                      [{"role": "user", "content": 5}]])
def test_session_from_messages_rejects_transcripts_without_a_user_message(messages):
    with pytest.raises(InputError):
        fake_agent().session_from_messages(messages)


def test_sessions_in_threads_keep_their_own_state():
    agent = fake_agent()
    results: dict[str, dict] = {}

    def chat(name: str, refinement: str):
        session = agent.session()
        turn(session, "funny animated movies about toys")
        results[name] = turn(session, refinement)["request"]

    threads = [threading.Thread(target=chat, args=(f"s{i}", r))
               for i, r in enumerate(["only after 2000", "something lighter"] * 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[f"s{i}"]["year_min"] == 2001 and results[f"s{i}"]["mood"] is None for i in range(0, 8, 2))
    assert all(results[f"s{i}"]["mood"] == "lighter" and results[f"s{i}"]["year_min"] is None for i in range(1, 8, 2))


def test_the_llm_takes_part_in_a_session(monkeypatch):
    """With mode=llm the session follows the LLM's scores (here a stub) over the feasible tools only."""
    tools = load_tools()
    chooser = ToolChooser(lambda: None, mode="llm")
    seen: list[set] = []

    def fake_scores(offered, message, shown=(), user=None):
        seen.append(set(offered))
        return {n: (0.0 if n == "search_catalog" else -5.0) for n in offered}

    monkeypatch.setattr(chooser, "llm_scores", fake_scores)
    result = turn(fake_agent(tools=tools, chooser=chooser).session(), "funny toys")
    assert result["tool"] == "search_catalog"
    assert "describe_image" not in seen[0] and "item_details" not in seen[0]  # no file, no item named


def test_a_mood_drops_the_genre_filter_it_contradicts():
    agent = fake_agent()
    session = agent.session()
    turn(session, "a gory horror")
    assert agent.recommender.calls[-1]["filters"].facets == {"genres": ("Horror",)}
    lighter = turn(session, "something lighter")
    assert lighter["items"] and agent.recommender.calls[-1]["filters"].facets == {}


def test_repl_commands_and_one_shot_json(capsys, tmp_path):
    from agent.cli.chat import collect, repl_command

    session = fake_agent().session()
    assert repl_command(session, "funny animated movies about toys") is False
    out = capsys.readouterr()
    assert "Here are my picks" in out.out and "[recommend" in out.err
    repl_command(session, "/history")
    assert "user: funny animated movies about toys" in capsys.readouterr().out
    with pytest.raises(InputError, match="needs a file"):
        repl_command(session, "/image")
    with pytest.raises(InputError, match="not found"):
        repl_command(session, f"/audio {tmp_path / 'none.wav'} hello")
    repl_command(session, "/reset")
    assert session.history == []
    assert repl_command(session, "/quit") is True
    data = collect(session.send("only comedies"))
    assert data["tool"] in ("filter_items", "recommend") and data["calls"][0]["ok"] and data["items"]


def test_a_photo_alone_becomes_a_request(tmp_path):
    class ReadText:
        name = "describe_image"

        def __call__(self, path: str) -> Observation:
            """Read a photo (a text file in this test)."""
            text = Path(path).read_text()
            return Observation(f'text on the image: "{text}"', data={"text": text})

    tools = {**load_tools(), "describe_image": Tool(ReadText())}
    agent = fake_agent(tools=tools)
    poster, note = tmp_path / "poster.jpg", tmp_path / "note.jpg"
    poster.write_text("TOY STORY")
    note.write_text("sci-fi dreams")
    named = turn(agent.session(), "", image=poster)
    assert [e["name"] for e in named["events"] if e["type"] == "tool"] == ["describe_image", "similar_items"]
    assert agent.recommender.calls[-1]["history"] == ["1"]
    other = turn(agent.session(), "", image=note)
    assert other["tool"] == "recommend" and "dreams" in agent.recommender.calls[-1]["query"]


def test_a_facet_named_in_a_message_filters_the_picks_of_a_shop():
    agent = fake_agent(items=SHOP)
    session = agent.session()
    result = turn(session, "recommend running shoes from Acme")
    assert agent.recommender.calls[-1]["filters"].facets == {"category": ("Running Shoes",), "brand": ("Acme",)}
    assert ids(result) == ["p1"] and "(Running Shoes, Acme):" in result["answer"]  # the constraints in force
    observation = next(e for e in result["events"] if e["type"] == "observation")
    assert "Trail Runner [Running Shoes, Acme] (id p1)" in observation["text"]
    assert result["request"]["facets"] == {"category": ["Running Shoes"], "brand": ["Acme"]}
    turn(session, "only sneakers")  # a refinement: the brand stays, the category changes
    assert agent.recommender.calls[-1]["filters"].facets == {"category": ("Sneakers",), "brand": ("Acme",)}


def test_a_shops_chat_answers_and_prompts_in_the_shops_words(tmp_path):
    class ReadText:
        name = "describe_image"

        def __call__(self, path: str) -> Observation:
            """Read a photo (a text file in this test)."""
            return Observation("text on the image", data={"text": Path(path).read_text()})

    shop = CatalogWords("product", "products", "bought", "shopper")
    agent = fake_agent(items=SHOP, words=shop, tools={**load_tools(), "describe_image": Tool(ReadText())})
    similar = turn(agent.session(), "more like Trail Runner")
    assert similar["tool"] == "similar_items" and similar["answer"].startswith("Products like Trail Runner")
    photo = tmp_path / "photo.jpg"
    photo.write_text("warm winter wool")
    session = agent.session()
    turn(session, "", image=photo)
    assert session.history[0]["content"] == "recommend products like this picture: warm winter wool"
    assert agent.recommender.calls[-1]["query"] == "warm winter wool"  # the catalog's noun is no search word
    built = fake_agent(items=SHOP, words=shop)
    built._chooser = None  # the agent builds its own chooser: with the catalog's words
    assert built.chooser.words == shop
    built._tools = None  # and loads its own tools: their text in the catalog's words
    assert built.tools["similar_items"].summary.startswith("Products similar to one given product")
    assert "remind me which products I bought" in built.tools["user_history"].examples
    answered = turn(built.session(), "which products are for running?")  # the shop's noun fires the rule
    assert answered["tool"] == "search_catalog"
    observation = next(e for e in similar["events"] if e["type"] == "observation")
    assert observation["text"].startswith("3 similar products:")


# --- streaming: items first, explanations as they are done ----------------------------------------


class Reason:
    def __init__(self, text: str):
        self.text = text

    def to_json(self) -> dict:
        return {"explanation": self.text, "explanation_status": "generated", "cites": []}


class DeferringRecommender:
    """The fake recommender with an explainer that honours agent.core.deferral, like the server's front."""

    def __init__(self, fail: bool = False):
        from tests.fakes.chat import FakeRecommender

        self.inner, self.fail, self.explained = FakeRecommender(), fail, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _explain(self, evidences: list) -> list:
        if self.fail:
            raise RuntimeError("the explainer broke")
        self.explained.append([e.item_id for e in evidences])
        return [Reason(f"{self.inner.items[e.item_id].title} suits the request.") for e in evidences]

    def recommend(self, *, explain=False, **kwargs) -> dict:
        from types import SimpleNamespace

        from agent.core import deferral

        result = self.inner.recommend(explain=False, **kwargs)
        evidences = [SimpleNamespace(item_id=item["id"]) for item in result["items"]]
        later = deferral.current()
        if explain and later is not None:
            later.add(self._explain, evidences)
        elif explain:
            for item, reason in zip(result["items"], self._explain(evidences), strict=True):
                item.update(reason.to_json())
        return result


def streaming_agent(recommender):
    from agent.chat.agent import ChatAgent
    from agent.chat.catalog import ChatCatalog
    from tests.fakes.chat import ITEMS

    return ChatAgent(recommender, Settings(chat_explain=True), catalog=ChatCatalog(ITEMS), tools=load_tools(),
                     chooser=ToolChooser(None, mode="rules"))


def test_items_and_the_settled_answer_stream_before_the_explanations():
    recommender = DeferringRecommender()
    result = turn(streaming_agent(recommender).session(), "funny animated movies about toys")
    events = result["events"]
    kinds = [e["type"] for e in events]
    first_reason = kinds.index("explanation")
    assert kinds[:3] == ["tool", "observation", "items"] and kinds[-1] == "done"
    assert all(item["explanation"] is None for item in events[2]["items"])  # the ranking, before any reason
    early = "".join(e["text"] for e in events[:first_reason] if e["type"] == "token")
    first = result["items"][0]
    assert early.startswith("Here are my picks") and f"1. {first['title']} ({first['year']}) (id {first['id']})" in early
    assert "suits the request" not in early  # nothing that waits for an explanation went out early
    tokens = "".join(e["text"] for e in events if e["type"] == "token")
    assert tokens == result["answer"]
    assert f"(id {first['id']}): {first['title']} suits the request." in result["answer"]
    reasons = [e for e in events if e["type"] == "explanation"]
    assert [e["id"] for e in reasons] == [i["id"] for i in result["items"]] == recommender.explained[0]
    assert [e["rank"] for e in reasons] == list(range(1, len(reasons) + 1))
    assert all(i["explanation"] == f"{i['title']} suits the request." for i in result["items"])
    assert {"understand", "tool_choice", "tool", "explain", "total"} <= set(result["timings"])  # where the time went


def test_a_failing_deferred_explainer_still_answers_with_the_items():
    result = turn(streaming_agent(DeferringRecommender(fail=True)).session(), "funny animated movies about toys")
    assert "explanation" not in [e["type"] for e in result["events"]]
    assert result["items"] and all(f"(id {i['id']})" in result["answer"] for i in result["items"])
    assert "suits the request" not in result["answer"]
    assert "".join(e["text"] for e in result["events"] if e["type"] == "token") == result["answer"]
