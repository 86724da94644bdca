"""Training rows for LoRA: (prompt, answer) pairs, tokenised with loss on the answer only."""

from __future__ import annotations

from pathlib import Path

from agent.core.errors import InputError
from agent.core.io import iter_json_objects


def read_pairs(path: Path) -> list[dict[str, str]]:
    """The (prompt, answer) rows; any bad row stops the run with its line number."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"training data not found: {path} (config key 'data')")
    rows, errors = [], []
    for line_no, row, problem in iter_json_objects(path):
        if problem is None and not (isinstance(row.get("prompt"), str) and isinstance(row.get("answer"), str)
                                    and row["answer"]):
            problem = "need string 'prompt' and non-empty string 'answer'"
        if problem is not None:
            errors.append(f"{path}:{line_no}: {problem}")
            continue
        rows.append({"prompt": row["prompt"], "answer": row["answer"]})
    if errors:
        raise InputError(f"{len(errors)} bad row(s) in {path}:\n" + "\n".join(errors[:20]))
    if not rows:
        raise InputError(f"no rows in {path}")
    return rows


def split_rows(n: int, val_fraction: float, max_val: int, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic (train, validation) index lists."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = min(max_val, round(n * val_fraction)) if val_fraction > 0 else 0
    if n_val and n - n_val < 1:
        n_val = n - 1
    return sorted(order[n_val:]), sorted(order[:n_val])


def encode_pair(tokenizer, prompt: str, answer: str, max_length: int, append_eos: bool) -> dict:
    """Token ids with labels -100 on the prompt, so only the answer carries loss."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"] if prompt else []
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if append_eos and tokenizer.eos_token_id is not None:
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    if not answer_ids:
        raise InputError(f"answer {answer!r} has no tokens")
    if len(answer_ids) >= max_length:
        raise InputError(f"an answer is {len(answer_ids)} tokens, not less than max_length {max_length}")
    truncated = len(prompt_ids) + len(answer_ids) > max_length
    if truncated:
        prompt_ids = prompt_ids[len(prompt_ids) + len(answer_ids) - max_length:]
    return {
        "input_ids": prompt_ids + answer_ids,
        "labels": [-100] * len(prompt_ids) + answer_ids,
        "truncated": truncated,
    }


def collate(encoded: list[dict], pad_id: int):
    import torch

    width = max(len(e["input_ids"]) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        labels[row, :n] = torch.tensor(e["labels"])
        mask[row, :n] = 1
    return ids, mask, labels


def epoch_order(n_train: int, seed: int, epoch: int) -> list[int]:
    """The data order of one epoch: a function of (seed, epoch) only, so resume replays it."""
    import numpy as np

    return np.random.default_rng([seed, epoch]).permutation(n_train).tolist()
