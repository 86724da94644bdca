"""Which tool answers a message: the LLM scores every registered tool name, rules add cheap evidence.

The LLM's choice is constrained: :func:`agent.llm.continuation_logprobs` scores exactly the
registered names (over one cached forward of the prompt), so the argmax is always a tool that
exists. SmolLM2-135M alone is a weak router, so each tool's ``triggers`` (regexes over the message)
add ``rule_weight`` per match; the LLM decides whenever the rules are silent or tied. ``recsage
bench chat`` measures LLM-only, rules-only and the combination on scripted turns (README, "Chat").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import prompts
from agent.chat.tools import Tool
from agent.core.project import MOVIE_WORDS, CatalogWords
from agent.llm import continuation_logprobs, continuation_logprobs_many

RULE_WEIGHT = 4.0
"""Log-probability units per matching trigger: a trigger outweighs all but a confident LLM."""
MODES = ("combined", "llm", "rules")
STYLES = ("list", "turns")
"""Prompt styles (setting ``chat_tool_prompt``): "list" suits SmolLM2-135M, "turns" the Qwen roles."""
LLM_FLOOR = -RULE_WEIGHT
"""Calibrated log-probabilities are clipped here in combined mode, so one matching trigger always
outweighs the LLM's aversion (calibration can push a tool far down, e.g. user_history for "what have I
watched so far?"); the LLM still decides between tools the rules score alike, and when none match."""
DEFAULT_PRIOR = 0.5
"""With no trigger matched, the default tool (recommend) gets half a trigger: the LLM must be
fairly sure to send an ordinary request elsewhere."""
CONTENT_FREE = "N/A"
"""The calibration message (Zhao et al. 2021, "Calibrate before use")."""


@dataclass
class Choice:
    name: str
    scores: dict[str, float]
    llm: dict[str, float] = field(default_factory=dict)
    rules: dict[str, float] = field(default_factory=dict)


ScoreJob = tuple[Mapping[str, Tool], str, list[str], str | None]
"""One message to choose a tool for: (the tools it may use, the message, items shown last, the user)."""


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def rule_scores(tools: Mapping[str, Tool], message: str) -> dict[str, float]:
    """Number of each tool's triggers found in the message."""
    return {name: float(sum(1 for t in tool.triggers if _compiled(t).search(message))) for name, tool in tools.items()}


def _log_softmax(values: dict[str, float]) -> dict[str, float]:
    top = max(values.values())
    norm = top + math.log(sum(math.exp(v - top) for v in values.values()))
    return {k: v - norm for k, v in values.items()}


def example_turns(tools: Mapping[str, Tool]) -> list[tuple[str, str]]:
    """(example message, tool name), taking one example of each tool in turn: shown in blocks, the
    tool whose examples come last would be favoured (small models copy the latest answer)."""
    queues = [[(e, t.name) for e in t.examples] for t in tools.values()]
    return [q[i] for i in range(max((len(q) for q in queues), default=0)) for q in queues if i < len(q)]


def _required(tool: Tool) -> list[str]:
    """The arguments a tool cannot run without: they tell tools with similar summaries apart
    (``similar_items(item)`` needs a movie, ``recommend()`` does not)."""
    return list(tool.parameters.get("required", []))


def _turn(words: CatalogWords, message: str, shown: list[str] = (), user: str | None = None) -> str:
    return prompts.render("chat_tool_choice_user.j2", message=message, shown="; ".join(shown[:5]), user=user,
                          words=words)


class ToolChooser:
    """Constrained tool choice; ``llm`` is a zero-argument loader so the model loads on first use;
    ``words``: the catalog's words its prompt says."""

    def __init__(self, llm: Callable[[], object] | None, mode: str = "combined", rule_weight: float = RULE_WEIGHT,
                 style: str = "list", words: CatalogWords = MOVIE_WORDS):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        if mode != "rules" and llm is None:
            raise ValueError(f"mode {mode!r} needs an LLM")
        self._llm, self.mode, self.rule_weight, self.style, self.words = llm, mode, rule_weight, style, words
        self.scores: Callable[[list[ScoreJob]], list[dict[str, float]]] = self.llm_scores_many
        """How :meth:`llm_scores` gets its scores: directly, or through the server's batching queue
        (agent.server.queues), which gathers concurrent chats' choices into one call of
        :meth:`llm_scores_many`."""

    def prompt(self, tools: Mapping[str, Tool], message: str, shown: list[str] = (), user: str | None = None) -> str:
        """The chat-formatted prompt, ending where the answer (a tool name) starts. "list": tools and
        examples in the system prompt; "turns": tools with their required arguments, then each
        tool's examples as earlier user turns answered by its name."""
        llm = self._llm()
        if self.style == "list":
            return llm.chat(prompts.render("chat_tool_choice.j2", tools=list(tools.values()), words=self.words),
                            _turn(self.words, message, shown, user))
        listed = [{"name": t.name, "summary": t.summary, "required": _required(t)} for t in tools.values()]
        system = prompts.render("chat_tool_choice_turns.j2", tools=listed, words=self.words)
        messages = [{"role": "system", "content": system}]
        for example, name in example_turns(tools):
            messages += [{"role": "user", "content": _turn(self.words, example)}, {"role": "assistant", "content": name}]
        messages.append({"role": "user", "content": _turn(self.words, message, shown, user)})
        return llm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def llm_scores(self, tools: Mapping[str, Tool], message: str, shown: list[str] = (),
                   user: str | None = None) -> dict[str, float]:
        """Log-probability of each tool name as the answer, normalised over the registered names. In
        the "list" style it is calibrated: minus the log-probability the same prompt gives it for an
        empty message, which removes the small model's prior for names it likes whatever the message
        (it favours 'recommend'). The "turns" style is not: its examples already set the model's
        expectations, and calibrating them cost the Qwen roles accuracy (README, Chat)."""
        return self.scores([(tools, message, list(shown), user)])[0]

    def llm_scores_many(self, jobs: list[ScoreJob]) -> list[dict[str, float]]:
        """:meth:`llm_scores` for several messages (concurrent chats) in one batched scoring."""
        asked = [(self.prompt(tools, message, shown, user), list(tools)) for tools, message, shown, user in jobs]
        out = []
        for (tools, *_), (_, names), logps in zip(jobs, asked, continuation_logprobs_many(self._llm(), asked),
                                                  strict=True):
            prior = self._prior(tools, names) if self.style == "list" else [0.0] * len(names)
            out.append(_log_softmax({n: lp - pr for n, lp, pr in zip(names, logps, prior, strict=True)}))
        return out

    def _prior(self, tools: Mapping[str, Tool], names: list[str]) -> list[float]:
        key = tuple((n, tools[n].summary) for n in names)
        cache = self.__dict__.setdefault("_priors", {})
        if key not in cache:
            cache[key] = continuation_logprobs(self._llm(), self.prompt(tools, CONTENT_FREE), names)
        return cache[key]

    def choose(self, tools: Mapping[str, Tool], message: str, shown: list[str] = (), user: str | None = None,
               default: str = "recommend") -> Choice:
        """The best-scoring registered tool."""
        if not tools:
            raise ValueError("no tools are registered")
        rules = rule_scores(tools, message) if self.mode != "llm" else {}
        llm = self.llm_scores(tools, message, shown, user) if self.mode != "rules" else {}
        return combine(tools, llm, rules, self.mode, self.rule_weight, default)


def combine(tools: Mapping[str, Tool], llm: dict[str, float], rules: dict[str, float], mode: str,
            rule_weight: float = RULE_WEIGHT, default: str = "recommend") -> Choice:
    """Pick a tool from LLM log-probabilities and rule matches. Rules alone break ties (and the
    no-match case) towards ``default``; every mode returns a key of ``tools``, by construction."""
    if mode == "rules":
        scores = {n: rules.get(n, 0.0) + (0.5 if n == default else 0.0) for n in tools}
    elif mode == "llm":
        scores = {n: llm[n] for n in tools}
    else:
        scores = {n: max(llm[n], LLM_FLOOR) + rule_weight * rules.get(n, 0.0) for n in tools}
        if default in scores and not any(rules.values()):
            scores[default] += rule_weight * DEFAULT_PRIOR
    name = max(tools, key=lambda n: (scores[n], n == default))
    return Choice(name, scores, llm, rules)
