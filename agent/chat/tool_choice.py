"""Which tool answers a message: the LLM scores every registered tool name, rules add cheap evidence.

The LLM's choice is constrained: :meth:`agent.llm.LoadedLlm.option_logprobs` scores exactly the
registered names, so the argmax is always a tool that exists. SmolLM2-135M alone is a weak router,
so each tool's ``triggers`` (regexes over the message) add ``rule_weight`` per match; the LLM decides
whenever the rules are silent or tied. ``recsage bench chat`` measures LLM-only, rules-only and the
combination on scripted turns (README, "Chat").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import prompts
from agent.chat.tools import Tool

RULE_WEIGHT = 4.0
"""Log-probability units per matching trigger: a trigger outweighs all but a confident LLM."""
MODES = ("combined", "llm", "rules")
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


def prefix_cached_logprobs(llm, prompt: str, options: list[str]) -> list[float]:
    """Log-probability of each option's tokens after ``prompt``: the prompt runs once, its key/value
    cache is repeated for a batch of the (right-padded) options. Same numbers as
    ``LoadedLlm.option_logprobs``, without re-reading the long tool list once per tool."""
    import torch

    from agent.llm import cache_kwarg, returned_cache

    tok = llm.tokenizer
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    rows = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    width, n = max(len(r) for r in rows), len(rows)
    ids = torch.zeros((n, width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    with llm.lock, torch.inference_mode():
        first = llm.model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
        cache = returned_cache(first)
        cache.batch_repeat_interleave(n)
        positions = torch.arange(len(prompt_ids), len(prompt_ids) + width).expand(n, -1)
        mask = torch.ones((n, len(prompt_ids) + width), dtype=torch.long)
        out = llm.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                        **{cache_kwarg(llm.model): cache})
    head = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
    rest = torch.log_softmax(out.logits.float(), dim=-1)
    return [float(head[r[0]] + sum(rest[i, j - 1, r[j]] for j in range(1, len(r)))) for i, r in enumerate(rows)]


class ToolChooser:
    """Constrained tool choice; ``llm`` is a zero-argument loader so the model loads on first use."""

    def __init__(self, llm: Callable[[], object] | None, mode: str = "combined", rule_weight: float = RULE_WEIGHT):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode != "rules" and llm is None:
            raise ValueError(f"mode {mode!r} needs an LLM")
        self._llm, self.mode, self.rule_weight = llm, mode, rule_weight

    def prompt(self, tools: Mapping[str, Tool], message: str, shown: list[str] = (), user: str | None = None) -> str:
        llm = self._llm()
        system = prompts.render("chat_tool_choice.j2", tools=list(tools.values()))
        turn = prompts.render("chat_tool_choice_user.j2", message=message, shown="; ".join(shown[:5]), user=user)
        return llm.chat(system, turn)

    def llm_scores(self, tools: Mapping[str, Tool], message: str, shown: list[str] = (),
                   user: str | None = None) -> dict[str, float]:
        """Log-probability of each tool name as the answer, normalised over the registered names and
        calibrated: minus the log-probability the same prompt gives it for an empty message, which
        removes the model's prior for names it likes whatever the message (it favours 'recommend')."""
        names = list(tools)
        llm = self._llm()
        logps = prefix_cached_logprobs(llm, self.prompt(tools, message, shown, user), names)
        prior = self._prior(tools, names)
        return _log_softmax({n: lp - pr for n, lp, pr in zip(names, logps, prior, strict=True)})

    def _prior(self, tools: Mapping[str, Tool], names: list[str]) -> list[float]:
        key = tuple((n, tools[n].summary) for n in names)
        cache = self.__dict__.setdefault("_priors", {})
        if key not in cache:
            cache[key] = prefix_cached_logprobs(self._llm(), self.prompt(tools, CONTENT_FREE), names)
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
