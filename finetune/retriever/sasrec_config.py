"""SASRec's hyperparameters and training settings: a frozen dataclass with help text per field,
validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class SasrecConfig:
    """Hyperparameters and training settings of SASRec."""

    hidden: int = field(
        default=64,
        metadata=_help(
            "Width of item/position embeddings and hidden states; the item and user vectors have this "
            "size (+1 with an output bias)."
        ),
    )
    n_blocks: int = field(
        default=2,
        metadata=_help(
            "Number of causal self-attention blocks."
        ),
    )
    n_heads: int = field(
        default=1,
        metadata=_help(
            "Attention heads per block; must divide hidden."
        ),
    )
    dropout: float = field(
        default=0.3,
        metadata=_help(
            "Dropout on embeddings, attention weights and block outputs; ml-latest-small is small, so "
            "it needs a lot."
        ),
    )
    max_len: int = field(
        default=200,
        metadata=_help(
            "Most recent items the model reads; longer histories are cut to their last max_len items."
        ),
    )
    output_bias: bool = field(
        default=True,
        metadata=_help(
            "Learn a per-item output bias (a popularity prior). It is folded into the vectors: item "
            "vector = [embedding, bias], user vector = [hidden, 1]."
        ),
    )
    loss: str = field(
        default="ce",
        metadata=_help(
            "'ce': softmax cross-entropy over all items at every position; 'bce': binary cross-entropy "
            "against n_negatives uniformly sampled items (the original paper)."
        ),
    )
    n_negatives: int = field(
        default=1,
        metadata=_help(
            "Sampled negatives per position for loss='bce'; ignored for 'ce'."
        ),
    )
    windows: str = field(
        default="all",
        metadata=_help(
            "How training sequences longer than max_len are used: 'last' keeps only the last max_len+1 "
            "items (the original recipe); 'all' also cuts earlier items into further windows so every "
            "training interaction is a target once."
        ),
    )
    epochs: int = field(
        default=100,
        metadata=_help(
            "Maximum number of passes over the training sequences."
        ),
    )
    batch_size: int = field(
        default=32,
        metadata=_help(
            "Training sequences (windows) per step. On ml-latest-small 32 (about 28 steps an epoch) "
            "converged in fewer epochs than 128."
        ),
    )
    length_buckets: int = field(
        default=8,
        metadata=_help(
            "Batches per shuffled chunk that is sorted by length before batching, so a batch is padded "
            "to similar lengths (much less wasted compute); batch order is shuffled again afterwards. 1 "
            "= plain shuffle."
        ),
    )
    lr: float = field(
        default=2e-3,
        metadata=_help(
            "Adam learning rate (betas 0.9, 0.98)."
        ),
    )
    weight_decay: float = field(
        default=0.0,
        metadata=_help(
            "AdamW weight decay (decoupled); 0 is plain Adam."
        ),
    )
    patience: int = field(
        default=20,
        metadata=_help(
            "Stop after this many epochs without a better validation NDCG@10; the best epoch's weights "
            "are kept."
        ),
    )
    max_minutes: float = field(
        default=0.0,
        metadata=_help(
            "Stop after this much training wall time (minutes, checked after each epoch); 0 means no "
            "limit. A limit makes the stopping epoch depend on machine speed, so leave it 0 where runs "
            "must be reproducible."
        ),
    )
    seed: int = field(
        default=0,
        metadata=_help(
            "Seed for initialisation, batch order, dropout and negatives; the same seed (and thread "
            "count) gives the same weights."
        ),
    )
    threads: int = field(
        default=1,
        metadata=_help(
            "torch CPU threads while training (torch.set_num_threads, restored afterwards; scoring uses "
            "the caller's setting); 0 leaves torch's setting alone. On a busy 2-core machine an "
            "ml-latest-small epoch took ~7 s at both 1 and 2 threads, so 1 leaves a core free."
        ),
    )
    eval_batch_size: int = field(
        default=256,
        metadata=_help(
            "Users per forward pass when computing user vectors."
        ),
    )

    def __post_init__(self) -> None:
        problems = []
        if self.hidden < 1 or self.n_heads < 1 or self.hidden % self.n_heads:
            problems.append(f"hidden ({self.hidden}) must be a positive multiple of n_heads ({self.n_heads})")
        if self.n_blocks < 1:
            problems.append(f"n_blocks must be >= 1, got {self.n_blocks}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.max_len < 1:
            problems.append(f"max_len must be >= 1, got {self.max_len}")
        if self.loss not in ("ce", "bce"):
            problems.append(f"loss must be 'ce' or 'bce', got {self.loss!r}")
        if self.windows not in ("last", "all"):
            problems.append(f"windows must be 'last' or 'all', got {self.windows!r}")
        for name in ("epochs", "batch_size", "patience", "eval_batch_size", "n_negatives", "length_buckets"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.max_minutes < 0 or self.threads < 0:
            problems.append("weight_decay, max_minutes and threads must be >= 0")
        if problems:
            raise ValueError("invalid SasrecConfig: " + "; ".join(problems))

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text, for CLIs and docs."""
        return {f.name: f.metadata["help"] for f in fields(cls)}


def with_overrides(config: SasrecConfig, **changes: Any) -> SasrecConfig:
    """A copy of ``config`` with some fields changed (validated again)."""
    return replace(config, **changes)
