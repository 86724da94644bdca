"""``recsage bench llm``: what each LLM role costs on this machine, the numbers behind choosing a
model per task (``task_models``): load time, prompt (prefill) and decode speed for a fixed prompt
and answer length, and memory.

Each role is measured in a fresh process, so its load time is not helped by a model already in
memory and its peak resident memory is its own (the operating system's file cache still is warm
after the first run: load times are for a model read from the page cache).
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from agent.core.config import Settings
from agent.core.timing import percentiles

PROMPT_TOKENS = 200
NEW_TOKENS = 32
SYSTEM = "You are a movie recommender. Answer with a numbered list, one movie and one sentence per line."
FILLER = (
    "I liked Toy Story (1995) because the toys feel alive and the jokes work for adults too. "
    "Heat (1995) was tense and long, and the bank robbery scene is the best I have seen. "
    "Amelie (2001) is sweet and odd, Paris looks like a painting. I did not enjoy slow dramas "
    "about lawyers. Lately I watch animated films and heist thrillers with my brother on Fridays. "
)
QUESTION = " Which twenty movies should we watch next, and why each one?"


def fit_prompt(llm, tokens: int = PROMPT_TOKENS) -> tuple[str, int]:
    """(a chat prompt of at most ``tokens`` tokens and as close to it as the text allows, its
    length): the same shape as the product's prompts (system + user turn), with the question last."""
    tok = llm.tokenizer

    def length(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"])

    words = (FILLER * (1 + tokens // 40)).split()
    lo, hi = 0, len(words)  # the most filler words that keep the prompt within ``tokens``
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if length(llm.chat(SYSTEM, " ".join(words[:mid]) + QUESTION)) <= tokens:
            lo = mid
        else:
            hi = mid - 1
    prompt = llm.chat(SYSTEM, " ".join(words[:lo]) + QUESTION)
    return prompt, length(prompt)


def _weights_mb(model) -> float:
    return sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _timed_generate(llm, prompt: str, new_tokens: int) -> tuple[float, list[str]]:
    """(seconds, the answer's pieces): one piece per generated token that added text, so their
    count is the decode steps that ran (EOS can end an answer early)."""
    pieces: list[str] = []
    start = time.perf_counter()
    llm.generate([prompt], max_new_tokens=new_tokens, stop=(), on_token=lambda _row, piece: pieces.append(piece))
    return time.perf_counter() - start, pieces


def measure_role(settings: Settings, role: str, repeats: int, dtype: str = "auto") -> dict:
    """One role's row (see :func:`bench_llm`); run in a process of its own."""
    import torch  # imported before the clock starts: the load time is the model's, not torch's
    import transformers  # noqa: F401

    from agent.llm import load_llm, resolve_dtype
    from agent.provision.models import model_path

    path = model_path(settings, role)
    start = time.perf_counter()
    llm = load_llm(settings, path, dtype=dtype)
    load_s = time.perf_counter() - start
    prompt, prompt_tokens = fit_prompt(llm)
    llm.generate([prompt], max_new_tokens=2, stop=())  # warm-up: first calls allocate and pick kernels
    prefill, total, new_tokens = [], [], []
    for _ in range(repeats):
        prefill.append(_timed_generate(llm, prompt, 1)[0])
        seconds, pieces = _timed_generate(llm, prompt, NEW_TOKENS)
        total.append(seconds)
        new_tokens.append(len(pieces))
    out = "".join(pieces)
    prefill_s, total_s = percentiles(prefill)["p50"], percentiles(total)["p50"]
    steps = min(new_tokens)
    return {
        "role": role, "path": str(path), "dtype": resolve_dtype(dtype, "cpu"), "threads": torch.get_num_threads(),
        "params_m": sum(p.numel() for p in llm.model.parameters()) / 1e6, "weights_mb": _weights_mb(llm.model),
        "load_s": load_s, "prompt_tokens": prompt_tokens, "new_tokens": steps,
        "prefill_s": prefill_s, "prefill_tok_s": prompt_tokens / prefill_s, "total_s": total_s,
        # decode speed: the answer's tokens after the first, over the time the full run took beyond prefill
        "decode_tok_s": (steps - 1) / max(total_s - prefill_s, 1e-9) if steps > 1 else float("nan"),
        "peak_rss_mb": _peak_rss_mb(), "sample": out[:120],
    }


def bench_llm(settings: Settings, roles: list[str], repeats: int = 3, dtype: str = "auto") -> list[dict]:
    """One row per role: ``load_s`` (safetensors -> ready, fresh process), ``prefill_s`` (p50 of
    the 200-token prompt with one new token), ``total_s`` (p50 of prompt + 32 new tokens, greedy),
    ``decode_tok_s``, ``prefill_tok_s``, ``weights_mb``, ``peak_rss_mb``, ``dtype`` and ``threads``."""
    rows = []
    for role in roles:
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            rows.append(pool.submit(measure_role, settings, role, repeats, dtype).result())
    return rows
