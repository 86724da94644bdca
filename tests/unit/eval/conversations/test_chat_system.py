"""The chat ranker: a case's context through the /v1/chat/completions code path (fake recommender)."""

from agent.chat.tools import load_tools
from eval.conversations.baselines import Case
from eval.conversations.chat_system import ChatRanker, DeepTool, deep_tools
from eval.conversations.dialogues import Message, RecommenderTurn
from tests.fakes.chat import fake_agent


def _case(*messages: tuple[str, str], named=("5",)) -> Case:
    context = tuple(Message(role, text, ()) for role, text in messages)
    return Case(RecommenderTurn("d", len(context), context, (), ("x",)), named, ("1",))


def test_the_context_is_replayed_and_the_last_seeker_message_answered():
    agent = fake_agent(tools=deep_tools(load_tools(), 10))
    ranker = ChatRanker(agent)
    case = _case(("user", "hello"), ("assistant", "what do you like?"), ("user", "recommend something funny"))
    ranked = ranker(case, 3)
    calls = agent.recommender.calls
    assert len(calls) == 1 and calls[0]["query"] == "funny"  # only the last user message runs a tool
    assert calls[0]["k"] == 3 + 1  # the depth plus the one movie named so far, which scoring removes
    # the fake ranks by word overlap: "funny" is a tag of Scream, Shrek, Finding Nemo, Cars, Up (id order)
    assert ranked == ["3", "4", "6", "8"]
    assert ranker.tools == {"recommend": 1}


def test_deep_tool_keeps_the_tools_own_surface():
    tools = load_tools()
    deep = DeepTool(tools["recommend"], 50)
    assert deep.name == "recommend" and deep.parameters == tools["recommend"].parameters
    assert deep.triggers == tools["recommend"].triggers
