"""The server's fronts for the recommender's models: one batching queue per model, and explanations
a chat turn asks to stream after its items.

:class:`ModelQueues` is installed as the recommender's ``wrap_part``: as the explainer and the
reranker load, each gets a front. With ``serve_batching`` on, a front sends calls through a
:class:`agent.core.batching.MicroBatcher` (the models named in ``batch_models``): the explanations of
every chat that asks within ``batch_window_ms`` are one ``explain`` call (one batched generation,
waiting while earlier chats still rank); reranking jobs, whose prompts share no prefix, run one after
another in their queue's worker. Off, calls run as before, each in its request's thread. Either way the explainer front honours :mod:`agent.core.deferral`, so
a chat turn gets its ranking first and streams the explanations when they are done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from contextlib import asynccontextmanager

from agent.core import deferral
from agent.core.batching import RANKING, MicroBatcher, Priority
from agent.core.config import Settings


class _Front:
    """Everything but the wrapped methods is the model's own (its last timings, its LLM)."""

    def __init__(self, part, run: Callable[[list], list]):
        self.part, self._run = part, run

    def __getattr__(self, name: str):
        return getattr(self.part, name)


class ExplainerFront(_Front):
    def explain(self, evidences: Sequence) -> list:
        """The explanations, in order; inside :func:`agent.core.deferral.deferring` the call is recorded
        and nothing is returned yet (the caller shows its items without explanations, then runs it)."""
        pending = deferral.current()
        if pending is not None and evidences:
            pending.add(self._run, evidences)
            return []
        return self._run(list(evidences))


class RerankerFront(_Front):
    def rerank(self, request_text: str, candidates: Sequence[tuple[Hashable, str]],
               history_titles: Sequence[str] = ()) -> list[tuple[Hashable, float]]:
        return self._run([(request_text, list(candidates), tuple(history_titles))])[0]


class ModelQueues:
    """Builds the fronts (``wrap``, for ``Recommender.wrap_part``) and owns their queues."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.batchers: dict[str, MicroBatcher] = {}

    def wrap_chooser(self, chooser):
        """The chat's tool chooser (``ChatAgent.wrap_chooser``): with ``tool_choice`` in
        ``batch_models``, concurrent chats' choices are scored together (one batched call of
        ``ToolChooser.llm_scores_many``: two forward passes over the cached system prompt)."""
        chooser.scores = self._queue("tool_choice", chooser.llm_scores_many)
        return chooser

    def wrap(self, name: str, part: object) -> object:
        if name == "explainer":
            # ranking first: the explanations wait (a while at most) for chats still ranking
            return ExplainerFront(part, self._queue("explain", part.explain, after=RANKING))
        if name == "reranker":
            return RerankerFront(part, self._queue("rerank", lambda jobs: [part.rerank(*job) for job in jobs]))
        return part

    def _queue(self, name: str, forward: Callable[[list], list], after: Priority | None = None) -> Callable[[list], list]:
        """``forward`` behind a batching queue (settings ``serve_batching``, ``batch_models``), or called directly."""
        if not self.settings.serve_batching or name not in self.settings.batch_models:
            return forward
        batcher = MicroBatcher(forward, window_ms=self.settings.batch_window_ms,
                               max_rows=self.settings.batch_max_rows, name=name, after=after,
                               max_yield_s=self.settings.batch_rank_first_s)
        self.batchers[name] = batcher
        return batcher.submit

    def stats(self) -> dict[str, dict]:
        """Forwards, rows and jobs per queue (rows per forward says how much batching happened)."""
        return {name: dict(b.stats) for name, b in self.batchers.items()}

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()

    @asynccontextmanager
    async def lifespan(self, _app) -> AsyncIterator[None]:
        """The server's lifespan: requests still waiting in a queue when it stops get a clear error."""
        try:
            yield
        finally:
            self.close()
