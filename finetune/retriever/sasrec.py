"""Training SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018).

The network, its files and its scoring are agent.retrieval.sasrec; this module trains it. Training
uses full softmax cross-entropy over all items at every position (3,650 items fit easily, and it
beat BCE with one sampled negative in the prototypes); BCE is kept as an option. Model selection is
early stopping on validation NDCG@10 computed with eval.metrics (all items ranked, history masked);
test targets are never touched. Checkpoints are safetensors + JSON (no pickle), training is
deterministic for a seed and thread count, and a run resumes from its checkpoint dir.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.core.io import read_json, write_json
from agent.core.progress import progress_bar
from agent.retrieval.interactions import Split
from agent.retrieval.sasrec import (
    WEIGHTS_FILE,
    SasrecModel,
    build_network,
    import_torch,
    load_state,
    pad_left,
    save_tensors,
    state_tensors,
)
from eval.metrics import evaluate
from eval.protocol import history_mask, ranks_from_matrix
from finetune.checkpoint import optimizer_tensors, restore_optimizer
from finetune.retriever.sasrec_config import SasrecConfig

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
LAST_FILE = "last.safetensors"
OPTIMIZER_PREFIX = "optim."  # key prefix of optimizer slots in last.safetensors (existing checkpoints use it)
# fields that may change when resuming a run (they do not change what one epoch computes)
RESUMABLE_CHANGES = {"epochs", "patience", "max_minutes", "threads"}


def training_windows(sequences: Sequence[np.ndarray], config: SasrecConfig) -> list[np.ndarray]:
    """Cut training sequences into windows of at most max_len + 1 items (inputs + next targets).

    'last' keeps each user's most recent window; 'all' steps back by max_len so every training
    interaction after the first is a target exactly once. Sequences of one item teach nothing.
    """
    out = []
    span = config.max_len + 1
    for seq in sequences:
        seq = np.asarray(seq, dtype=np.int64)
        end = len(seq)
        while end >= 2:
            out.append(seq[max(0, end - span):end])
            if config.windows == "last":
                break
            end -= config.max_len
    return out


def epoch_batches(lengths: np.ndarray, config: SasrecConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Window indices per batch for one epoch: shuffled, length-bucketed, in shuffled order.

    Every window appears exactly once. Sorting each chunk of ``length_buckets`` batches by length
    keeps short windows together, so most batches are padded to far less than max_len.
    """
    order = rng.permutation(len(lengths))
    chunk = config.batch_size * config.length_buckets
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + config.batch_size] for i in range(0, len(part), config.batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _epoch_seed(seed: int, epoch: int) -> int:
    # each epoch re-seeds from (seed, epoch): resuming after epoch e replays epoch e+1 exactly
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _batch_loss(network, batch: np.ndarray, config: SasrecConfig, n_items: int, rng: np.random.Generator):
    torch = import_torch()
    F = torch.nn.functional
    tokens = torch.from_numpy(batch)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    states = network(inputs)
    valid = (targets > 0) & (inputs > 0)
    h = states[valid]
    y = targets[valid] - 1  # dense item ids
    if config.loss == "ce":
        return F.cross_entropy(network.logits(h), y)
    negatives = torch.from_numpy(rng.integers(0, n_items, size=(y.shape[0], config.n_negatives)))
    emb = network.item_emb.weight
    pos = (h * emb[y + 1]).sum(-1)
    neg = torch.einsum("nh,nkh->nk", h, emb[negatives + 1])
    if network.bias is not None:
        pos = pos + network.bias[y + 1]
        neg = neg + network.bias[negatives + 1]
    return F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + \
        F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))


def _same_run(saved: dict, config: SasrecConfig) -> list[str]:
    current = config.model_dump()
    return [k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]]


def train_sasrec(
    split: Split,
    config: SasrecConfig | None = None,
    out_dir: Path | None = None,
    resume: bool = True,
    progress: bool = True,
    warm_start: Path | None = None,
) -> SasrecModel:
    """Train on the split's training sequences; early-stop on validation NDCG@10.

    After every epoch the validation items are ranked against all items (training history
    masked). The best epoch's weights are kept (and saved to ``out_dir`` as model.safetensors +
    config.json); the latest epoch's weights and optimizer state go to ``out_dir/checkpoint`` so
    an interrupted run continues where it stopped (``resume``) and ends with the same weights as
    an uninterrupted one. Each epoch is seeded from (seed, epoch), which makes batch order,
    dropout and sampled negatives independent of where a run was resumed.

    ``warm_start`` (a model folder with the same items and architecture) starts from its weights
    instead of random ones, unless a checkpoint is resumed: fine-tuning on new interactions. Those
    weights, ranked on the validation items first, count as epoch 0, so the result is never worse on
    validation than the model it started from.
    """
    torch = import_torch()
    config = config or SasrecConfig()
    previous = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(split, config, out_dir, resume, progress, warm_start)
    finally:
        torch.set_num_threads(previous)


def _optimizer(network, config: SasrecConfig):
    torch = import_torch()
    if config.weight_decay:
        return torch.optim.AdamW(network.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    return torch.optim.Adam(network.parameters(), lr=config.lr, betas=(0.9, 0.98))


def _fresh_state() -> dict[str, Any]:
    return {"epoch": 0, "best_ndcg": -1.0, "best_epoch": 0, "stale": 0, "best_val": {}, "log": [],
            "train_seconds": 0.0}


def _restore(out_dir: Path, config: SasrecConfig, n_items: int, network, optimizer) -> tuple[dict, dict | None]:
    """(run state, best weights so far) from ``out_dir``'s checkpoint, loaded into ``network`` and
    ``optimizer``; refuses a checkpoint made with settings that change what an epoch computes."""
    from safetensors.torch import load_file

    ckpt = out_dir / CHECKPOINT_DIR
    saved = read_json(ckpt / STATE_FILE)
    differs = _same_run(saved["config"], config)
    if differs or saved["n_items"] != n_items:
        raise ValueError(
            f"{ckpt} holds a run with different settings ({', '.join(differs) or 'n_items'}); "
            "use another out_dir or pass resume=False to start over"
        )
    last = load_file(str(ckpt / LAST_FILE))
    network.load_state_dict({k[len("model."):]: v for k, v in last.items() if k.startswith("model.")})
    restore_optimizer(optimizer, last, saved["optimizer"]["param_groups"], OPTIMIZER_PREFIX)
    best_weights = load_file(str(out_dir / WEIGHTS_FILE)) if (out_dir / WEIGHTS_FILE).exists() else None
    return saved["state"], best_weights


def _validate(model: SasrecModel, split: Split, histories: list[np.ndarray], mask) -> dict[str, float]:
    model.network.eval()
    model._item_vectors = None  # the weights changed since the vectors were cached
    return evaluate(ranks_from_matrix(split, model.score_matrix(histories), "val", mask), ks=(1, 5, 10, 20))


def _start(out_dir: Path | None, config: SasrecConfig, resume: bool, warm_start: Path | None, model: SasrecModel,
           optimizer, validate: Callable[[], dict]) -> tuple[dict, dict | None]:
    """(run state, best weights so far): a resumed checkpoint, the warm-start weights, or nothing."""
    if out_dir is not None and resume and (out_dir / CHECKPOINT_DIR / STATE_FILE).exists():
        return _restore(out_dir, config, model.n_items, model.network, optimizer)
    state = _fresh_state()
    if warm_start is None:
        return state, None
    load_state(model.network, Path(warm_start) / WEIGHTS_FILE)
    val = validate()
    state.update(best_ndcg=val["NDCG@10"], best_val=val)
    state["log"].append({"epoch": 0, "warm_start": str(warm_start), "val_ndcg@10": val["NDCG@10"],
                         "val_recall@10": val["Recall@10"], "seconds": 0.0})
    return state, state_tensors(model.network)


def _save_checkpoint(ckpt: Path, network, optimizer, config: SasrecConfig, n_items: int, state: dict) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    tensors = optimizer_tensors(optimizer, OPTIMIZER_PREFIX)
    tensors.update({f"model.{k}": v for k, v in state_tensors(network).items()})
    save_tensors(tensors, ckpt / LAST_FILE)
    write_json(ckpt / STATE_FILE, {"config": config.model_dump(), "n_items": n_items,
                                   "optimizer": {"param_groups": optimizer.state_dict()["param_groups"]},
                                   "state": state})


def _train_epoch(network, optimizer, windows: list[np.ndarray], lengths: np.ndarray, config: SasrecConfig,
                 n_items: int, epoch: int, show: Callable[[float], None]) -> float:
    """One pass over the windows, seeded from (seed, epoch); returns the mean loss per window.
    ``show(mean_loss_so_far)`` runs after every batch."""
    torch = import_torch()
    seed = _epoch_seed(config.seed, epoch)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batches = epoch_batches(lengths, config, rng)
    network.train()
    total, count = 0.0, 0
    for chosen in batches:
        batch = pad_left([windows[i] for i in chosen], config.max_len + 1)
        loss = _batch_loss(network, batch, config, n_items, rng)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
        count += len(batch)
        show(total / count)
    return total / count


def _train(split: Split, config: SasrecConfig, out_dir: Path | None, resume: bool, progress: bool,
           warm_start: Path | None) -> SasrecModel:
    # The epoch loop stays here whole: the resume state, the best weights and the checkpoint
    # written after each epoch must stay in step.
    torch = import_torch()
    n_items = split.n_items
    torch.manual_seed(config.seed)
    network = build_network(n_items, config)
    optimizer = _optimizer(network, config)

    windows = training_windows(split.train, config)
    if not windows:
        raise ValueError("no training sequence has 2 or more items: nothing to learn from")
    lengths = np.array([len(w) for w in windows])
    val_histories = [split.history(u, "val") for u in range(split.n_users)]
    out_dir = Path(out_dir) if out_dir is not None else None
    ckpt = out_dir / CHECKPOINT_DIR if out_dir is not None else None
    model = SasrecModel(network, config, n_items, split.item_ids)
    val_mask = history_mask(split, "val")
    state, best_weights = _start(out_dir, config, resume, warm_start, model, optimizer,
                                 lambda: _validate(model, split, val_histories, val_mask))
    with progress_bar("SASRec", config.epochs, initial=state["epoch"], enabled=progress,
                      plain_line=lambda done, of: f"SASRec: epoch {done}/{of}") as advance:
        while state["epoch"] < config.epochs and state["stale"] < config.patience:
            if config.max_minutes and state["train_seconds"] >= 60 * config.max_minutes:
                break
            epoch = state["epoch"] + 1
            started = time.perf_counter()
            best = f"{max(state['best_ndcg'], 0):.4f}"
            loss = _train_epoch(network, optimizer, windows, lengths, config, n_items, epoch,
                                lambda mean: advance(0, loss=f"{mean:.4f}", best=best))
            val = _validate(model, split, val_histories, val_mask)
            seconds = time.perf_counter() - started
            state["train_seconds"] += seconds
            state["epoch"] = epoch
            state["log"].append({"epoch": epoch, "loss": loss, "val_ndcg@10": val["NDCG@10"],
                                 "val_recall@10": val["Recall@10"], "seconds": seconds})
            if val["NDCG@10"] > state["best_ndcg"]:
                state.update(best_ndcg=val["NDCG@10"], best_epoch=epoch, stale=0, best_val=val)
                best_weights = state_tensors(network)
                if out_dir is not None:  # the best model so far is loadable even if the run dies
                    model.info = _info(state)
                    model.save(out_dir)
            else:
                state["stale"] += 1
            if ckpt is not None:
                _save_checkpoint(ckpt, network, optimizer, config, n_items, state)
            advance(1, loss=f"{loss:.4f}", val=f"{val['NDCG@10']:.4f}", best=f"{state['best_ndcg']:.4f}")

    if best_weights is not None:
        network.load_state_dict(best_weights)
    network.eval()
    model = SasrecModel(network, config, n_items, split.item_ids, _info(state))
    if out_dir is not None:
        model.save(out_dir)
    return model


def _info(state: dict) -> dict:
    return {"best_epoch": state["best_epoch"], "epochs_run": state["epoch"], "best_val": state["best_val"],
            "train_seconds": state["train_seconds"], "log": state["log"]}
