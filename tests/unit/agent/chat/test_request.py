"""The structured request read from a whole conversation (agent/chat/request.py), on hand-made dialogues."""

from agent.chat.catalog import ChatCatalog
from agent.chat.request import Request, named_titles, read_request
from agent.ingest.catalog import Item

ITEMS = [
    Item(id="1", title="Super Troopers", year=2001, facets={"genres": ("Comedy",)}),
    Item(id="2", title="Starship Troopers", year=1997, facets={"genres": ("Action", "Sci-Fi")}),
    Item(id="3", title="Police Academy", year=1984, facets={"genres": ("Comedy",)}),
    Item(id="4", title="Titanic", year=1997, facets={"genres": ("Drama", "Romance")}),
    Item(id="5", title="Titanic", year=1953, facets={"genres": ("Drama",)}),
    Item(id="6", title="Halloween", year=1978, facets={"genres": ("Horror",)}),
]


def catalog() -> ChatCatalog:
    return ChatCatalog(ITEMS)


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def test_a_title_with_a_year_resolves_to_that_years_item():
    assert [i for i, _ in named_titles("I loved Titanic (1953) and Super Troopers (2001)", catalog())] == ["5", "1"]
    assert [i for i, _ in named_titles("Titanic (1997) was great", catalog())] == ["4"]


def test_a_year_one_off_still_resolves():
    assert [i for i, _ in named_titles("like Super Troopers (2002)", catalog())] == ["1"]


def test_titles_named_by_the_person_are_liked_unless_they_say_no():
    r = Request.from_conversation([user("Hi, a movie like Super Troopers (2001)? I did not like Titanic (1997).")],
                                  catalog())
    assert r.liked == ["1"]
    assert r.disliked == ["4"]
    assert r.named == ["1", "4"]


def test_a_reaction_to_the_assistants_titles():
    r = Request.from_conversation([
        user("Something funny please"),
        assistant("Have you seen Police Academy (1984)?"),
        user("Yes I have seen it, loved it."),
    ], catalog())
    assert r.liked == ["3"] and r.seen == ["3"]
    assert "3" in r.exclude


def test_not_a_fan_of_the_assistants_title_is_disliked():
    r = Request.from_conversation([assistant("Try Starship Troopers (1997)"), user("Not a fan, too much action")],
                                  catalog())
    assert r.disliked == ["2"] and r.liked == []


def test_titles_the_assistant_named_without_a_reaction_stay_recommendable():
    r = Request.from_conversation([user("a comedy"), assistant("Police Academy (1984)"), user("anything newer?")],
                                  catalog())
    assert r.exclude == [] and r.liked == []


def test_facets_wanted_unwanted_years_and_need():
    r = Request.from_conversation([user("I like comedy movies about cops. No horror please, from the 80s")],
                                  catalog())
    assert r.facets == {"genres": ("Comedy",)}
    assert r.unwanted == {"genres": ("Horror",)}
    assert (r.year_min, r.year_max) == (1980, 1989)
    assert "cops" in r.need.split() and "horror" not in r.need.split()


def test_every_title_either_side_named_is_mentioned_in_order():
    r = read_request([user("a movie like Super Troopers (2001)?"), assistant("Try Police Academy (1984)"),
                      user("ok, any other?")], catalog())
    assert r.mentioned == ["1", "3"]
    assert r.named == ["1"]  # the assistant's unanswered suggestion stays recommendable
    assert r.liked_ids == ["1"]


def test_liked_ids_drop_a_title_also_turned_down():
    r = Request(liked=["1", "3"], disliked=["3"])
    assert r.liked_ids == ["1"]
