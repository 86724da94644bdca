"""LLM reranking of retriever candidates, scored from logits (never from generated text).

Pointwise yes/no: one question per candidate, score = logit(yes) - logit(no) at the answer
position. The prompt text before the card (system prompt, request, history) is shared, so its
key/value cache is computed once and all candidates' suffixes run over it in one pass, packed a few
to a row with a mask that keeps them apart (no padding waste, little masked attention). The output
is always a permutation of the candidates, and with no list in the prompt there is no position bias.
(A listwise prompt with label letters was tried first: SmolLM2-135M copied the candidate order, and
shuffled it was no better than random.)

Only the hidden state at the answer position is projected, and only onto the few label tokens
(no full-vocabulary logits). What the model reads of each card (compacted, truncated, fenced) is
:mod:`agent.rerank.prompt`; the packing of candidates into rows is :mod:`agent.rerank.packing`; the
prefix cache is :func:`agent.llm.prefix_forward` / :func:`agent.llm.over_prefix`.

:func:`interpolate` mixes z-scored retriever and LLM scores so a weak LLM cannot wreck the
retriever's order; :func:`rerank_ranking` applies a reranker to the top k of a ranked list and keeps
everything beyond the candidates in the retriever's order.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np

import prompts
from agent.core.config import load_settings
from agent.core.project import MOVIE_WORDS, CatalogWords
from agent.llm import (
    chat_prompt,
    load_llm,
    over_prefix,
    prefix_forward,
)
from agent.provision.models import llm_for
from agent.rerank.packing import pack_suffixes, uses_sdpa
from agent.rerank.prompt import (
    CARD_CHARS,
    REQUEST_CHARS,
    SENTINEL,
    SEQUENTIAL_REQUEST,
    fence_text,
    rerank_view,
)
from agent.retrieval.fusion import standardize

MIN_STD = 1e-12
"""A spread of scores at or below this is no spread: those scores z-score to zeros."""


def interpolate(
    retriever_scores: Mapping[Hashable, float] | Sequence[tuple[Hashable, float]],
    llm_scores: Mapping[Hashable, float] | Sequence[tuple[Hashable, float]],
    alpha: float,
) -> list[tuple[Hashable, float]]:
    """(1 - alpha) * z(retriever) + alpha * z(llm) over the retriever's candidates, best first.

    Both score sets are z-scored over the candidates first, so their scales do not matter; alpha=0
    keeps the retriever's order, alpha=1 is the LLM's. An id without an LLM score gets the LLM's
    mean (z = 0); LLM ids outside the retriever's candidates are ignored. Ties keep retriever order.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    ret = list(retriever_scores.items()) if isinstance(retriever_scores, Mapping) else list(retriever_scores)
    llm = dict(llm_scores.items() if isinstance(llm_scores, Mapping) else llm_scores)
    if not ret:
        return []
    ids = [i for i, _ in ret]
    z_ret = standardize(np.array([s for _, s in ret]), min_std=MIN_STD)
    known = [i for i in ids if i in llm]
    z_llm_known = dict(zip(known, standardize(np.array([llm[i] for i in known]), min_std=MIN_STD))) if known else {}
    z_llm = np.array([z_llm_known.get(i, 0.0) for i in ids])
    mixed = (1.0 - alpha) * z_ret + alpha * z_llm
    order = sorted(range(len(ids)), key=lambda j: (-mixed[j], j))
    return [(ids[j], float(mixed[j])) for j in order]


class LlmReranker:
    """Rerank candidates with a causal LM's yes/no logits at the answer position.

    ``model``/``tokenizer`` may be given (tests pass a tiny random model); otherwise the provisioned
    ``llm`` role is loaded on first use (bf16 weights where the CPU has native bf16). The model runs
    in its own dtype; only the yes/no logits are computed in fp32. ``words``: the catalog's words the
    prompt says (the project's; the movie words, which the shipped adapter learned, by default).
    """

    def __init__(
        self,
        settings=None,
        *,
        card_chars: int = CARD_CHARS,
        model=None,
        tokenizer=None,
        path: Path | str | None = None,
        batch_size: int = 32,
        server=None,
        words: CatalogWords = MOVIE_WORDS,
    ):
        self.settings = settings
        self.words = words
        # an agent.llm_server.RemoteLlm: scores come from the LLM server's label log-probabilities
        self.server = server
        if server is not None and tokenizer is None:
            tokenizer = server.tokenizer
        self.card_chars = card_chars
        self.batch_size = batch_size
        self._path = path
        self._model = model
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self._token_cache: dict[str, int] = {}
        self.last_stats: dict = {}

    # --- model ----------------------------------------------------------------------------------

    def _load(self) -> None:
        """The provisioned LLM (or ``path``) through the one shared loader, bf16 weights where the
        hardware computes bf16 natively (see :func:`load_reranker`); logits are read in fp32."""
        with self._lock:
            if self._model is not None and self._tokenizer is not None:
                return
            settings = self.settings or load_settings()
            llm = load_llm(settings, self._path) if self._path else llm_for(settings, "rerank")
            self._model = self._model if self._model is not None else llm.model
            self._tokenizer = self._tokenizer if self._tokenizer is not None else llm.tokenizer
        self._model.eval()

    @property
    def model(self):
        if self._model is None or self._tokenizer is None:
            self._load()
        return self._model

    @property
    def tokenizer(self):
        if self._tokenizer is None or (self._model is None and self.server is None):
            self._load()
        return self._tokenizer

    def token_id(self, text: str) -> int:
        """The first token of ``text`` (used for yes and no)."""
        if text not in self._token_cache:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if not ids:
                raise ValueError(f"the tokenizer encodes {text!r} to nothing")
            self._token_cache[text] = ids[0]
        return self._token_cache[text]

    def _label_logits(self, hidden, token_ids: list[int]):
        """Project final hidden states (n, d) onto a few vocabulary rows only: (n, len(token_ids))."""
        import torch

        head = self.model.get_output_embeddings()
        weight = head.weight[token_ids]  # (t, d)
        # fp32 even with bf16 weights (and under a caller's autocast): logits are ~20-30 in size,
        # where bf16 steps by 0.125-0.25, which tied most yes/no margins (3 cards -> 0.25, 0.25, 0.25)
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            logits = hidden.float() @ weight.float().T
            if getattr(head, "bias", None) is not None:
                logits = logits + head.bias[token_ids].float()
        return logits

    # --- public -------------------------------------------------------------------------------

    def rerank(
        self,
        request_text: str,
        candidates: Sequence[tuple[Hashable, str]],
        history_titles: Sequence[str] = (),
    ) -> list[tuple[Hashable, float]]:
        """All candidates as (id, score), best first. Ties keep the given order."""
        candidates = list(candidates)
        if not candidates:
            return []
        request_text = request_text.strip() or SEQUENTIAL_REQUEST
        ids = [c[0] for c in candidates]
        if len(set(ids)) != len(ids):
            raise ValueError("candidate ids must be unique")
        start = time.perf_counter()
        scores = self.pointwise_scores(request_text, [c[1] for c in candidates], history_titles)
        self.last_stats["seconds"] = time.perf_counter() - start
        order = sorted(range(len(ids)), key=lambda j: (-scores[j], j))
        return [(ids[j], float(scores[j])) for j in order]

    def _pointwise_parts(self, request: str, history: Sequence[str]) -> tuple[str, str]:
        """The chat-formatted pointwise prompt split around the card: (shared prefix, suffix)."""
        system = prompts.render("rerank_pointwise.j2", part="system", request="", history=[], card="",
                                words=self.words)
        user = prompts.render(
            "rerank_pointwise.j2",
            words=self.words,
            part="user",
            request=fence_text(request, REQUEST_CHARS),
            history=[fence_text(t, 120) for t in history],
            card=SENTINEL,
        )
        prefix, suffix = chat_prompt(self.tokenizer, system, user).split(SENTINEL, 1)
        return prefix, suffix

    def candidate_text(self, card: str) -> str:
        """What the model reads of one candidate: the card's rerank view, truncated and fenced."""
        return fence_text(rerank_view(card), self.card_chars)

    def pointwise_prompt(self, request: str, card: str, history: Sequence[str] = ()) -> str:
        """The full pointwise prompt for one card: what fine-tuning trains on, token for token."""
        prefix, suffix = self._pointwise_parts(request, history)
        return prefix + self.candidate_text(card) + suffix

    def pointwise_scores(self, request: str, cards: Sequence[str], history: Sequence[str] = ()) -> list[float]:
        """logit(yes) - logit(no) per card: the shared prompt prefix's key/value cache is computed
        once, then all candidates' suffixes run over it in one pass, packed into a few rows
        (see :func:`pack_suffixes`). With an LLM server: :meth:`server_scores`."""
        import torch

        if self.server is not None:
            return self.server_scores(request, cards, history)
        prefix_text, suffix_template = self._pointwise_parts(request, history)
        tok = self.tokenizer
        suffixes = [
            tok(self.candidate_text(card) + suffix_template, add_special_tokens=False)["input_ids"]
            for card in cards
        ]
        # bounded by construction: the request is cut to REQUEST_CHARS, history titles and cards
        # to their own lengths, so the system prompt is never cut away
        prefix_ids = torch.tensor([tok(prefix_text, add_special_tokens=False)["input_ids"]])
        yes, no = self._yes_no_tokens()
        model = self.model
        scores: list[float] = []
        with torch.inference_mode():
            _, prefix_cache = prefix_forward(model.model, prefix_ids)  # hidden states only: no vocabulary head
            p_len = prefix_ids.shape[1]
            for lo in range(0, len(suffixes), self.batch_size):
                ids, positions, mask, where = pack_suffixes(suffixes[lo: lo + self.batch_size], p_len,
                                                            boolean_mask=uses_sdpa(model))
                # the forward grows the cache it is given: every chunk but the last gets a copy
                last_chunk = lo + self.batch_size >= len(suffixes)
                cache = prefix_cache if last_chunk else copy.deepcopy(prefix_cache)
                out = over_prefix(model.model, cache, ids, positions, mask)
                rows, cols = zip(*where)
                logits = self._label_logits(out.last_hidden_state[list(rows), list(cols)], yes + no)
                yes_l = torch.logsumexp(logits[:, : len(yes)], dim=-1)
                no_l = torch.logsumexp(logits[:, len(yes):], dim=-1)
                scores.extend((yes_l - no_l).tolist())
        self.last_stats.update({
            "mode": "pointwise",
            "prefix_tokens": int(p_len),
            "tokens": int(p_len + sum(len(s) for s in suffixes)),
        })
        return scores

    def server_scores(self, request: str, cards: Sequence[str], history: Sequence[str] = ()) -> list[float]:
        """logprob(yes) - logprob(no) per card from the LLM server, on the very token ids the local
        path reads (prefix ids + suffix ids); equal to the logit margin, the softmax's normaliser
        cancels. ``last_stats["missing_labels"]``: labels the server did not return (top-k fallback)."""
        prefix_text, suffix_template = self._pointwise_parts(request, history)
        tok = self.tokenizer
        prefix = tok(prefix_text, add_special_tokens=False)["input_ids"]
        prompts = [prefix + tok(self.candidate_text(card) + suffix_template, add_special_tokens=False)["input_ids"]
                   for card in cards]
        yes, no = self._yes_no_tokens()
        rows, missing = self.server.label_logprobs(prompts, yes + no)
        scores = [float(np.logaddexp.reduce([r[t] for t in yes]) - np.logaddexp.reduce([r[t] for t in no]))
                  for r in rows]
        self.last_stats.update({"mode": "server", "prefix_tokens": len(prefix),
                                "tokens": sum(len(p) for p in prompts),
                                "missing_labels": missing})
        return scores

    def _yes_no_tokens(self) -> tuple[list[int], list[int]]:
        yes = [self.token_id(w) for w in ("yes", "Yes")]
        no = [self.token_id(w) for w in ("no", "No")]
        if set(yes) & set(no):
            raise ValueError("yes and no map to the same token in this tokenizer")
        return yes, no

    def pointwise_scores_naive(self, request: str, cards: Sequence[str], history: Sequence[str] = ()) -> list[float]:
        """The same scores the slow way, as a baseline and a check: every candidate's full prompt
        through the whole model (no shared-prefix cache), full-vocabulary logits."""
        import torch

        tok = self.tokenizer
        encoded = [tok(self.pointwise_prompt(request, card, history), add_special_tokens=False)["input_ids"]
                   for card in cards]
        yes, no = self._yes_no_tokens()
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        scores: list[float] = []
        with torch.inference_mode():
            for lo in range(0, len(encoded), self.batch_size):
                chunk = encoded[lo: lo + self.batch_size]
                width = max(len(e) for e in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for r, e in enumerate(chunk):
                    ids[r, : len(e)] = torch.tensor(e)
                    mask[r, : len(e)] = 1
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
                last = logits[torch.arange(len(chunk)), torch.tensor([len(e) - 1 for e in chunk])]
                scores.extend((torch.logsumexp(last[:, yes], -1) - torch.logsumexp(last[:, no], -1)).tolist())
        return scores


def rerank_ranking(
    reranker: LlmReranker,
    request_text: str,
    ranked: Sequence[tuple[Hashable, float]],
    cards: Mapping[Hashable, str],
    k: int = 20,
    alpha: float | None = None,
    history_titles: Sequence[str] = (),
) -> list[Hashable]:
    """Rerank the top k of a retriever's (id, score) list; the rest keep the retriever's order.

    alpha=None uses the LLM order alone; otherwise :func:`interpolate` with that alpha. A candidate
    without a card is reranked on its id alone (it is still a candidate).
    """
    head, tail = list(ranked[:k]), list(ranked[k:])
    if not head:
        return [i for i, _ in tail]
    llm = reranker.rerank(request_text, [(i, cards.get(i, str(i))) for i, _ in head], history_titles)
    if alpha is None:
        order = [i for i, _ in llm]
    else:
        order = [i for i, _ in interpolate(head, llm, alpha)]
    return order + [i for i, _ in tail]


def load_reranker(settings, dtype: str = "auto", words: CatalogWords = MOVIE_WORDS) -> LlmReranker:
    """The product reranker: the provisioned LLM with the configured LoRA adapter merged in
    (``settings.rerank_adapter``; the shipped one unless overridden), pointwise yes/no scoring, its
    prompt in the catalog's ``words``.

    ``dtype`` "auto" loads bf16 weights where the CPU computes bf16 natively: faster than fp32
    weights under bf16 autocast (which re-casts every weight on every call), with scores that agree
    (README; `recsage bench rerank`). "fp32" is the naive baseline's precision.
    """
    from agent.core.errors import RecsageError

    adapter = settings.rerank_adapter
    if adapter is not None and str(adapter) and not (Path(adapter) / "adapter_config.json").exists():
        raise RecsageError(
            f"reranker adapter {adapter} has no adapter_config.json: restore finetune/adapters/rerank "
            "(git checkout), train one with `recsage finetune --recipe finetune/configs/rerank.toml`, "
            "or set rerank_adapter = \"\" for the zero-shot model"
        )
    llm = llm_for(settings, "rerank", adapter=adapter or None, dtype=dtype)
    if hasattr(llm, "label_logprobs"):  # on an LLM server: the adapter is asked for by its served name
        return LlmReranker(settings, server=llm.for_model(settings.rerank_server_adapter) if adapter else llm,
                           words=words)
    return LlmReranker(settings, model=llm.model, tokenizer=llm.tokenizer, words=words)
