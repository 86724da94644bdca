"""A scripted stand-in for one profile's ChatAgent in `recsage bench tasks` tests: every recommend
call and chat turn returns the next scripted stage timings, so the benchmark's rows are known."""

from __future__ import annotations

from agent.chat.catalog import ChatCatalog
from agent.core.config import Settings
from tests.fakes.chat import ITEMS


class ScriptedRecommender:
    """Answers each recommend call with the next scripted stage timings."""

    def __init__(self, timings: list[dict]):
        self.timings, self.calls = list(timings), []

    def recommend(self, **kwargs) -> dict:
        self.calls.append(kwargs)
        return {"items": [], "timings": self.timings.pop(0)}


class ScriptedSession:
    def __init__(self, agent):
        self.agent = agent

    def send(self, text: str):
        self.agent.sent.append(text)
        yield {"type": "tool", "name": "recommend", "arguments": {}}
        yield {"type": "done", "answer": "ok", "timings": self.agent.turns.pop(0)}


class ScriptedAgent:
    """The parts of a ChatAgent the benchmark uses: settings, catalog, recommender, sessions."""

    def __init__(self, settings: Settings, recommend: list[dict], turns: list[dict]):
        self.settings, self.catalog = settings, ChatCatalog(ITEMS)
        self.recommender, self.turns, self.sent = ScriptedRecommender(recommend), list(turns), []

    def session(self):
        return ScriptedSession(self)


def request_timings(i: float) -> list[dict]:
    """Request i's two recommend calls: ranked (no explanations), then `-k 5 --explain`."""
    return [{"request": 0.5, "retrieve": 0.1 * i, "rerank": 1.0 * i, "explain": 0.0, "total": 9.0},
            {"request": 0.5, "retrieve": 0.1, "rerank": 1.0, "explain": 0.2 * i, "total": 1.0 + i}]


def scripted(settings: Settings, n: int) -> ScriptedAgent:
    """A warm-up request (i = 10, far off so counting it would show) and requests i = 1..n."""
    order = [10, *range(1, n + 1)]
    recommend = [t for i in order for t in request_timings(i)]
    turns = [{"understand": 0.01, "tool_choice": 0.3 * i, "tool": 1.0, "total": 3.0 + i} for i in order]
    return ScriptedAgent(settings, recommend, turns)
