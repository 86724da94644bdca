"""The one place that loads a causal LM and runs it: loading (base + optional LoRA adapter,
:mod:`agent.llm.loading`), the chat template and batched greedy generation (:mod:`agent.llm.runtime`),
and scoring continuations over a shared, cached prefix (:mod:`agent.llm.scoring`).

Serving (reranker, explainer, chat agent), training (LoRA), merging and provisioning (GGUF ->
safetensors) all load through :func:`load_causal_lm`. Serving shares one instance per (path,
adapter, dtype) through :func:`load_llm`, with one lock every caller holds while running it: memory
stays flat and the model is safe to share between threads (the HTTP server runs requests
concurrently).
"""

from agent.llm.loading import (  # noqa: F401 - the package's API
    ADAPTER_WEIGHTS,
    DTYPES,
    default_device,
    load_causal_lm,
    load_llm,
    merge_lora,
    native_bf16,
    resolve_dtype,
)
from agent.llm.runtime import (  # noqa: F401
    FORWARD_TOKENS,
    MIN_SHARED_PREFIX,
    LoadedLlm,
    cache_kwarg,
    chat_prompt,
    keep_end,
    over_prefix,
    prefix_forward,
    returned_cache,
    row_groups,
    shared_prefix,
    token_budget,
)
from agent.llm.scoring import continuation_logprobs, continuation_logprobs_many  # noqa: F401
