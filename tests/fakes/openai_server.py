"""A fake OpenAI-compatible LLM server over real HTTP on loopback, answering from a local causal LM
(the tiny random llama): the subset of vLLM's /v1/completions that agent/llm_server.py speaks, with
its response shapes (top_logprobs keyed "token_id:N" when return_tokens_as_token_ids, the sampled
token included).

``label_ids``: how the server treats vLLM's ``logprob_token_ids``: "honoured" (vLLM), "ignored"
(plain top-k comes back, as from a server without the extension) or "refused" (400).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAiServer:
    def __init__(self, model, tokenizer, label_ids: str = "honoured", models=("llm", "rerank"),
                 api_key: str | None = None):
        self.model, self.tokenizer = model, tokenizer
        self.label_ids = label_ids
        self.models = set(models)
        self.api_key = api_key
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    # --- the model --------------------------------------------------------------------------------

    def _logprobs(self, ids: list[int]):
        """log-softmax over the vocabulary at every position of ``ids`` (L, V)."""
        import torch

        with self._lock, torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()
        return torch.log_softmax(logits, dim=-1)

    def _greedy(self, ids: list[int], max_tokens: int, stop: list[str]) -> str:
        out: list[int] = []
        for _ in range(max_tokens):
            out.append(int(self._logprobs(ids + out)[-1].argmax()))
            text = self.tokenizer.decode(out, skip_special_tokens=True)
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            if cut >= 0:
                return text[:cut]
        return self.tokenizer.decode(out, skip_special_tokens=True)

    def _key(self, token: int, as_ids: bool) -> str:
        return f"token_id:{token}" if as_ids else self.tokenizer.decode([token])

    def _choice(self, index: int, ids: list[int], body: dict) -> dict:
        choice: dict = {"index": index, "text": "", "finish_reason": "length", "logprobs": None}
        if body.get("max_tokens", 16) > 1 or body.get("logprobs") is None:
            choice["text"] = self._greedy(ids, body.get("max_tokens", 16), list(body.get("stop") or []))
        if body.get("logprobs") is not None:
            last, as_ids = self._logprobs(ids)[-1], bool(body.get("return_tokens_as_token_ids"))
            sampled = int(last.argmax())
            asked = body.get("logprob_token_ids") if self.label_ids == "honoured" else None
            chosen = asked or [int(t) for t in last.topk(int(body["logprobs"])).indices]
            top = {self._key(t, as_ids): float(last[t]) for t in [sampled, *chosen]}
            choice["logprobs"] = {"tokens": [self._key(sampled, as_ids)], "token_logprobs": [float(last[sampled])],
                                  "top_logprobs": [top], "text_offset": [0]}
        return choice

    def complete(self, body: dict) -> tuple[int, dict]:
        if body.get("model") not in self.models:
            return 404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}}
        if body.get("logprob_token_ids") and self.label_ids == "refused":
            return 400, {"error": {"message": "Unrecognized request argument supplied: logprob_token_ids"}}
        prompts = body["prompt"]
        prompts = [prompts] if prompts and isinstance(prompts[0], int) else prompts
        if not all(isinstance(p, list) for p in prompts):
            prompts = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        return 200, {"object": "text_completion", "model": body["model"],
                     "choices": [self._choice(i, p, body) for i, p in enumerate(prompts)]}

    # --- HTTP -----------------------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet test output
                pass

            def _send(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _authorised(self) -> bool:
                if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    self._send(401, {"error": {"message": "invalid API key"}})
                    return False
                return True

            def do_GET(self):
                if self._authorised():
                    self._send(200, {"object": "list", "data": [{"id": m} for m in sorted(fake.models)]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                fake.requests.append({"path": self.path, "body": body})
                if not self._authorised():
                    return
                if self.path != "/v1/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                self._send(*fake.complete(body))

        return Handler
