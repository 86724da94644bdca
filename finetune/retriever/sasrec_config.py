"""SASRec's training settings, on top of the architecture that inference reads
(agent.retrieval.sasrec.SasrecArchitecture): one validated config, saved whole with the model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agent.retrieval.sasrec import SasrecArchitecture


class SasrecConfig(SasrecArchitecture):
    """Hyperparameters and training settings of SASRec."""

    loss: Literal["ce", "bce"] = Field(
        "ce",
        description="'ce': softmax cross-entropy over all items at every position; 'bce': binary "
        "cross-entropy against n_negatives uniformly sampled items (the original paper).",
    )
    n_negatives: int = Field(1, ge=1, description="Sampled negatives per position for loss='bce'; ignored for 'ce'.")
    windows: Literal["last", "all"] = Field(
        "all",
        description="How training sequences longer than max_len are used: 'last' keeps only the last "
        "max_len+1 items (the original recipe); 'all' also cuts earlier items into further windows so "
        "every training interaction is a target once.",
    )
    epochs: int = Field(100, ge=1, description="Maximum number of passes over the training sequences.")
    batch_size: int = Field(
        32, ge=1,
        description="Training sequences (windows) per step. On ml-latest-small 32 converged in fewer epochs "
        "than 128.",
    )
    length_buckets: int = Field(
        8, ge=1,
        description="Batches per shuffled chunk that is sorted by length before batching, so a batch is "
        "padded to similar lengths (much less wasted compute); batch order is shuffled again afterwards. "
        "1 = plain shuffle.",
    )
    lr: float = Field(2e-3, gt=0, description="Adam learning rate (betas 0.9, 0.98).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (decoupled); 0 is plain Adam.")
    patience: int = Field(
        20, ge=1,
        description="Stop after this many epochs without a better validation NDCG@10; the best epoch's "
        "weights are kept.",
    )
    max_minutes: float = Field(
        0.0, ge=0,
        description="Stop after this much training wall time (minutes, checked after each epoch); 0 means "
        "no limit. A limit makes the stopping epoch depend on machine speed, so leave it 0 where runs "
        "must be reproducible.",
    )
    seed: int = Field(
        0,
        description="Seed for initialisation, batch order, dropout and negatives; the same seed (and "
        "thread count) gives the same weights.",
    )
    threads: int = Field(
        1, ge=0,
        description="torch CPU threads while training (torch.set_num_threads, restored afterwards; scoring "
        "uses the caller's setting); 0 leaves torch's setting alone. On a busy 2-core machine a second "
        "thread did not shorten an ml-latest-small epoch, so 1 leaves a core free.",
    )
