"""LLM reranking of retriever candidates, scored from logits (never from generated text).

Pointwise yes/no: one question per candidate, score = logit(yes) - logit(no) at the answer
position. The prompt text before the card (system prompt, request, history) is shared, so its
key/value cache is computed once and all candidates' suffixes run over it in one pass, packed a few
to a row with a mask that keeps them apart (no padding waste, little masked attention). The output
is always a permutation of the candidates, and with no list in the prompt there is no position bias.
(A listwise prompt with label letters was tried first: SmolLM2-135M copied the candidate order, and
shuffled it was no better than random.)

Only the hidden state at the answer position is projected, and only onto the few label tokens
(no full-vocabulary logits). Catalog text is data, not instructions: each card is truncated and
fenced inside <item> ... </item>, with angle brackets escaped so a card cannot close its fence or
forge chat-template tokens, and the system prompt says so.

:func:`interpolate` mixes z-scored retriever and LLM scores so a weak LLM cannot wreck the
retriever's order; :func:`rerank_ranking` applies a reranker to the top k of a ranked list and keeps
everything beyond the candidates in the retriever's order.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np

import prompts
from agent.llm import cache_kwarg, returned_cache

SEQUENTIAL_REQUEST = "the movie this viewer will want to watch next, given what they recently watched"
"""The request text when there is none (history-only recommendation): the sequential task."""
HISTORY_TITLES = 10
"""Most recent history items the reranker reads (older ones add tokens, not signal)."""


def title_line(meta: Mapping) -> str:
    """How the reranker names a history item: "Title (year)", as in training and evaluation."""
    title, year = str(meta.get("title", "")).strip(), meta.get("year")
    return f"{title} ({year})" if year not in (None, "", -1) else title


CARD_CHARS = 160
"""Characters of each candidate's rerank view: ~35 tokens, so 20 candidates cost ~800 tokens."""
# Card lines the reranker reads, in this order (people, poster OCR and long fields cost tokens
# and, measured on the request benchmark's validation half, added nothing).
RERANK_FIELDS = ("Genres", "Tags", "Plot", "Audio transcript", "Image")
SENTINEL = "\u2063CARD\u2063"  # marks where a pointwise card goes; never appears in a card after escaping

_TAG_RE = re.compile(r"[<>]")


def fence_text(text: str, max_chars: int = CARD_CHARS) -> str:
    """Make item text safe to place inside <item> ... </item>: whitespace-tidied, truncated at a word
    boundary to ``max_chars`` and with every angle bracket escaped, so it cannot close the fence,
    open a new item or forge a chat-template token such as <|im_end|>."""
    text = "\n".join(" ".join(line.split()) for line in str(text).splitlines() if line.strip())
    text = text.replace(SENTINEL, "")
    if max_chars and len(text) > max_chars:
        cut = text[:max_chars]
        space = max(cut.rfind(" "), cut.rfind("\n"))
        text = (cut[:space] if space > max_chars // 2 else cut).rstrip() + "..."
    return _TAG_RE.sub(lambda m: "&lt;" if m.group() == "<" else "&gt;", text)


def rerank_view(card: str) -> str:
    """The compact text of a context card that the reranker reads: "Title (year) | genres | tags |
    plot ...", fields in :data:`RERANK_FIELDS` order. Text that is not a card passes through."""
    fields: dict[str, str] = {}
    for line in str(card).splitlines():
        name, sep, value = line.partition(": ")
        if sep and value.strip():
            fields.setdefault(name.strip(), value.strip())
    if "Title" not in fields:
        return str(card)
    return " | ".join([fields["Title"]] + [fields[f] for f in RERANK_FIELDS if f in fields])


def _zscore(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    std = values.std()
    return (values - values.mean()) / std if std > 1e-12 else np.zeros_like(values)


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
    z_ret = _zscore(np.array([s for _, s in ret]))
    known = [i for i in ids if i in llm]
    z_llm_known = dict(zip(known, _zscore(np.array([llm[i] for i in known])))) if known else {}
    z_llm = np.array([z_llm_known.get(i, 0.0) for i in ids])
    mixed = (1.0 - alpha) * z_ret + alpha * z_llm
    order = sorted(range(len(ids)), key=lambda j: (-mixed[j], j))
    return [(ids[j], float(mixed[j])) for j in order]


ROW_TOKENS = 128
"""Target length of one packed row of candidate suffixes: attention over a row costs its length times
(prefix + its length), so long rows waste it on masked pairs (one row of 20 cards: attention was 45%
of the time); short rows waste matmuls on padding. Measured on 20 candidates (p50): 96, 128 and 192
alike (0.45-0.49 s), 64 and 256 slower (0.50-0.51 s), one row 0.59 s."""


def pack_suffixes(suffixes: Sequence[Sequence[int]], prefix_len: int, row_tokens: int = ROW_TOKENS,
                  boolean_mask: bool = True):
    """Candidate suffixes packed into a few rows of similar length, to run over a cached prefix.

    Returns (input_ids (R, W), position_ids (R, W), attention mask (R, 1, W, prefix_len + W), and for
    each suffix its (row, index of its last token)). Each suffix token attends to the whole prefix
    and causally to its own suffix only, and its positions continue from the prefix, so every suffix
    is scored exactly as if it ran alone after the prefix. Rows are filled longest suffix first into
    the currently shortest row, so padding stays small (equal lengths in token order). Padding
    tokens see only the prefix.
    ``boolean_mask``: True = may attend (SDPA); else an additive float mask (0 / -inf, eager).
    """
    import torch

    n_rows = max(1, min(len(suffixes), round(sum(len(s) for s in suffixes) / row_tokens)))
    rows: list[list[int]] = [[] for _ in range(n_rows)]  # suffix indices per row
    fill = [0] * n_rows
    # ties broken by the tokens, not the input order: the rows (and so every bf16 rounding) depend
    # only on which candidates there are, so candidate order cannot change a score at all
    for i in sorted(range(len(suffixes)), key=lambda i: (-len(suffixes[i]), list(suffixes[i]))):
        r = fill.index(min(fill))
        rows[r].append(i)
        fill[r] += len(suffixes[i])
    width = max(fill)
    ids = torch.zeros((n_rows, width), dtype=torch.long)
    owner = torch.full((n_rows, width), -1)
    offset = torch.zeros((n_rows, width), dtype=torch.long)
    where = [(0, 0)] * len(suffixes)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            n = len(suffixes[i])
            ids[r, at: at + n] = torch.tensor(suffixes[i], dtype=torch.long)
            owner[r, at: at + n] = i
            offset[r, at: at + n] = torch.arange(n)
            at += n
            where[i] = (r, at - 1)
    own = (owner[:, :, None] == owner[:, None, :]) & (owner[:, None, :] >= 0)
    allowed = torch.cat([torch.ones((n_rows, width, prefix_len), dtype=torch.bool),
                         own & (offset[:, None, :] <= offset[:, :, None])], dim=-1)
    mask = allowed[:, None]
    if not boolean_mask:
        mask = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    return ids, prefix_len + offset, mask, where


def _sdpa(model) -> bool:
    return getattr(model.config, "_attn_implementation", "sdpa") == "sdpa"


class LlmReranker:
    """Rerank candidates with a causal LM's yes/no logits at the answer position.

    ``model``/``tokenizer`` may be given (tests pass a tiny random model); otherwise the provisioned
    ``llm`` role is loaded on first use (bf16 weights where the CPU has native bf16). The model runs
    in its own dtype; only the yes/no logits are computed in fp32.
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
    ):
        self.settings = settings
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
            from agent.llm import load_llm

            llm = load_llm(self.settings, path=self._path)
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
        if self._model is None or self._tokenizer is None:
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

    def _chat(self, system: str, user: str) -> str:
        return self.tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": user}],
            tokenize=False,
            add_generation_prompt=True,
        )

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
        system = prompts.render("rerank_pointwise.j2", part="system", request="", history=[], card="")
        user = prompts.render(
            "rerank_pointwise.j2",
            part="user",
            request=fence_text(request, 0),
            history=[fence_text(t, 120) for t in history],
            card=SENTINEL,
        )
        prefix, suffix = self._chat(system, user).split(SENTINEL, 1)
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
        (see :func:`pack_suffixes`)."""
        import torch

        prefix_text, suffix_template = self._pointwise_parts(request, history)
        tok = self.tokenizer
        prefix_ids = tok(prefix_text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        suffixes = [
            tok(self.candidate_text(card) + suffix_template, add_special_tokens=False)["input_ids"]
            for card in cards
        ]
        yes, no = self._yes_no_tokens()
        model = self.model
        scores: list[float] = []
        with torch.inference_mode():
            prefix_cache = returned_cache(model.model(input_ids=prefix_ids, use_cache=True))
            p_len = prefix_ids.shape[1]
            for lo in range(0, len(suffixes), self.batch_size):
                ids, positions, mask, where = pack_suffixes(suffixes[lo: lo + self.batch_size], p_len,
                                                            boolean_mask=_sdpa(model))
                # the forward grows the cache it is given: every chunk but the last gets a copy
                last_chunk = lo + self.batch_size >= len(suffixes)
                cache = prefix_cache if last_chunk else copy.deepcopy(prefix_cache)
                cache.batch_repeat_interleave(ids.shape[0])
                out = model.model(input_ids=ids, position_ids=positions, attention_mask=mask, use_cache=True,
                                  **{cache_kwarg(model.model): cache})
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


def load_reranker(settings, dtype: str = "auto") -> LlmReranker:
    """The product reranker: the provisioned LLM with the configured LoRA adapter merged in
    (``settings.rerank_adapter``; the shipped one unless overridden), pointwise yes/no scoring.

    ``dtype`` "auto" loads bf16 weights where the CPU computes bf16 natively: measured 6% faster
    than fp32 weights under bf16 autocast (which re-casts every weight on every call), with score
    correlation 0.9998 (`recsage bench rerank`). "fp32" is the naive baseline's precision.
    """
    from agent.core.errors import RecsageError
    from agent.llm import load_llm

    adapter = settings.rerank_adapter
    if adapter is not None and str(adapter) and not (Path(adapter) / "adapter_config.json").exists():
        raise RecsageError(
            f"reranker adapter {adapter} has no adapter_config.json: restore finetune/adapters/rerank "
            "(git checkout), train one with `recsage finetune --config finetune/configs/rerank.toml`, "
            "or set rerank_adapter = \"\" for the zero-shot model"
        )
    llm = load_llm(settings, adapter=adapter or None, dtype=dtype)
    return LlmReranker(settings, model=llm.model, tokenizer=llm.tokenizer)
