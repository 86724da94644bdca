"""recsage's conversation path as a ranker: a turn's context goes through the same code as
``/v1/chat/completions`` (the transcript limits of agent.server.openai_shapes, then
ChatAgent.session_from_messages replays the earlier messages and the last user message is sent),
called in process rather than over HTTP. The ranked list is the items of the turn's answer.

The chat's tools answer ten items by default; for Recall@50 every tool that takes ``k`` is asked
for the evaluation's depth instead (:class:`DeepTool`), plus the movies named so far, which the
scoring removes; everything else about the turn is unchanged. Explanations do not change the
ranking, so the evaluation turns them off (setting ``chat_explain``).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agent.server.openai_shapes import ChatMessage, fit_transcript
from eval.conversations.baselines import Case


class DeepTool:
    """A chat tool that answers ``depth`` items when it takes ``k``; the rest is the tool's own."""

    def __init__(self, tool: Any, depth: int):
        self._tool, self.depth = tool, depth

    def __getattr__(self, name: str):
        return getattr(self._tool, name)

    def __call__(self, context, arguments: dict):
        if "k" in self._tool.parameters.get("properties", {}):
            arguments = {**arguments, "k": self.depth}
        return self._tool(context, arguments)


def deep_tools(tools: dict, depth: int) -> dict:
    """The chat's tools (agent.chat.tools.load_tools), each answering ``depth`` items when it takes
    ``k``: pass them as ``ChatAgent(..., tools=...)``."""
    return {name: DeepTool(tool, depth) for name, tool in tools.items()}


class ChatRanker:
    """Ranks a case by one chat completion over its context; remembers which tool answered.
    ``agent``: a ChatAgent, built with :func:`deep_tools` for rankings deeper than ten."""

    def __init__(self, agent):
        self.agent = agent
        self.tools: Counter[str] = Counter()

    def answer(self, case: Case) -> dict:
        """The turn's done event (answer, items, tool) for the case's context."""
        messages = [ChatMessage(**m) for m in case.turn.messages()]
        transcript = fit_transcript(messages, self.agent.settings)
        session, text = self.agent.session_from_messages(transcript)
        done: dict = {}
        for event in session.send(text):
            if event["type"] == "done":
                done = event
        return done

    def __call__(self, case: Case, depth: int) -> list[str]:
        for tool in self.agent.tools.values():
            if isinstance(tool, DeepTool):
                tool.depth = depth + len(case.named)
        done = self.answer(case)
        self.tools[done.get("tool") or "none"] += 1
        return [str(item["id"]) for item in done.get("items", [])]
