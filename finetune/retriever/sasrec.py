"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018) in plain torch.

A small causal transformer reads a user's items in time order and predicts the next one at every
position. It is the collaborative retriever of recsage: its final hidden state is a *user vector*
and its (tied) item embeddings are *item vectors*, so retrieval is a plain dot product that a vector
store (Chroma) can serve. If the model has an output bias, the bias is folded in by appending a
constant 1 to the user vector and the bias to each item vector; ``scores`` is computed from exactly
those two arrays, so what is evaluated here is what the store will rank.

Training uses full softmax cross-entropy over all items at every position (3,650 items fit easily,
and it beat BCE with one sampled negative in the prototypes); BCE is kept as an option. Model
selection is early stopping on validation NDCG@10 computed with eval.metrics (all items ranked,
history masked); test targets are never touched. Checkpoints are safetensors + JSON (no pickle),
training is deterministic for a seed and thread count, and a run resumes from its checkpoint dir.

Positions are counted from the end of the sequence (0 = most recent item). With left padding this
is what the original model's slot index encodes, and it lets a batch be trimmed to its longest
sequence without changing any result.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from eval.metrics import evaluate
from agent.retrieval.interactions import Split, SplitName
from finetune.checkpoint import optimizer_tensors, restore_optimizer
from finetune.retriever.sasrec_config import SasrecConfig

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
LAST_FILE = "last.safetensors"
OPTIMIZER_PREFIX = "optim."  # key prefix of optimizer slots in last.safetensors (existing checkpoints use it)
# fields that may change when resuming a run (they do not change what one epoch computes)
RESUMABLE_CHANGES = {"epochs", "patience", "max_minutes", "threads"}


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise ImportError("SASRec needs torch: pip install 'torch==2.14.1'") from exc
    return torch


def _build_network(n_items: int, config: SasrecConfig):
    """The torch module; built inside a function so importing this file stays light."""
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        """Pre-norm causal self-attention + position-wise feed-forward, both residual."""

        def __init__(self) -> None:
            super().__init__()
            h = config.hidden
            self.norm1 = nn.LayerNorm(h)
            self.qkv = nn.Linear(h, 3 * h)
            self.proj = nn.Linear(h, h)
            self.norm2 = nn.LayerNorm(h)
            self.ff1 = nn.Linear(h, h)
            self.ff2 = nn.Linear(h, h)
            self.drop = nn.Dropout(config.dropout)

        def forward(self, x, allowed):
            b, length, h = x.shape
            heads = config.n_heads
            q, k, v = self.qkv(self.norm1(x)).view(b, length, 3, heads, h // heads).permute(2, 0, 3, 1, 4)
            attn = F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, dropout_p=config.dropout if self.training else 0.0
            )
            x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, length, h)))
            return x + self.drop(self.ff2(self.drop(F.relu(self.ff1(self.norm2(x))))))

    class SASRecNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            h = config.hidden
            self.item_emb = nn.Embedding(n_items + 1, h, padding_idx=0)  # 0 = padding
            self.pos_emb = nn.Embedding(config.max_len, h)  # 0 = most recent position
            self.drop = nn.Dropout(config.dropout)
            self.blocks = nn.ModuleList(Block() for _ in range(config.n_blocks))
            self.final_norm = nn.LayerNorm(h)
            self.bias = nn.Parameter(torch.zeros(n_items + 1)) if config.output_bias else None
            nn.init.normal_(self.item_emb.weight, std=h ** -0.5)
            nn.init.normal_(self.pos_emb.weight, std=h ** -0.5)
            with torch.no_grad():
                self.item_emb.weight[0].zero_()

        def forward(self, seq):
            """(batch, length) left-padded item tokens -> (batch, length, hidden) states."""
            length = seq.shape[1]
            real = seq > 0
            positions = torch.arange(length - 1, -1, -1, device=seq.device)
            x = self.item_emb(seq) * math.sqrt(config.hidden) + self.pos_emb(positions)[None]
            x = self.drop(x) * real[..., None]
            causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
            # a query sees earlier real items and always itself (padding rows stay finite)
            allowed = (causal[None] & real[:, None, :]) | torch.eye(length, dtype=torch.bool)[None]
            allowed = allowed[:, None]  # broadcast over heads
            for block in self.blocks:
                x = block(x, allowed) * real[..., None]
            return self.final_norm(x)

        def logits(self, states):
            out = states @ self.item_emb.weight[1:].T
            return out + self.bias[1:] if self.bias is not None else out

    return SASRecNet()


def _pad_left(histories: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Token matrix (dense item + 1, 0 = pad), each row the last ``max_len`` items, right-aligned."""
    width = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    out = np.zeros((len(histories), width), dtype=np.int64)
    for row, items in enumerate(histories):
        tail = np.asarray(items, dtype=np.int64)[-max_len:]
        if tail.size:
            out[row, width - tail.size:] = tail + 1
    return out


class SasrecModel:
    """A trained SASRec: user vectors, item vectors and scores, with save/load."""

    def __init__(self, network, config: SasrecConfig, n_items: int, item_ids: Sequence[str] = (),
                 info: dict[str, Any] | None = None) -> None:
        self.network = network.eval()
        self.config = config
        self.n_items = n_items
        self.item_ids = list(item_ids)
        self.info = dict(info or {})
        self._item_vectors: np.ndarray | None = None

    @property
    def dim(self) -> int:
        """Length of user and item vectors (hidden, +1 when the output bias is folded in)."""
        return self.config.hidden + (1 if self.config.output_bias else 0)

    def item_vectors(self) -> np.ndarray:
        """(n_items, dim) float32, row i for dense item i: the output embedding [, bias]."""
        if self._item_vectors is None:
            torch = _torch()
            with torch.no_grad():
                emb = self.network.item_emb.weight[1:].detach().float().numpy()
                if self.network.bias is not None:
                    emb = np.hstack([emb, self.network.bias[1:].detach().float().numpy()[:, None]])
            self._item_vectors = np.ascontiguousarray(emb, dtype=np.float32)
        return self._item_vectors

    def user_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(n_users, dim) float32: final hidden state after each history [, constant 1].

        An empty history gets the state of an all-padding sequence (a popularity-like vector).
        """
        torch = _torch()
        rows = []
        with torch.no_grad():
            for start in range(0, len(histories), self.config.eval_batch_size):
                chunk = histories[start:start + self.config.eval_batch_size]
                for h in chunk:
                    h = np.asarray(h)
                    if h.size and (h.min() < 0 or h.max() >= self.n_items):
                        raise ValueError(f"history item ids must lie in 0..{self.n_items - 1}")
                seq = torch.from_numpy(_pad_left(chunk, self.config.max_len))
                rows.append(self.network(seq)[:, -1].float().numpy())
        users = np.concatenate(rows) if rows else np.zeros((0, self.config.hidden), dtype=np.float32)
        if self.config.output_bias:
            users = np.hstack([users, np.ones((users.shape[0], 1), dtype=np.float32)])
        return np.ascontiguousarray(users, dtype=np.float32)

    def user_vector(self, history: Sequence[int] | np.ndarray) -> np.ndarray:
        """(dim,) float32 user vector for one history of dense item ids in time order."""
        return self.user_vectors([np.asarray(history, dtype=np.int64)])[0]

    def scores(self, history: Sequence[int] | np.ndarray) -> np.ndarray:
        """Score of every item: item_vectors() @ user_vector(history), nothing else."""
        return self.item_vectors() @ self.user_vector(history)

    def score_matrix(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(n_users, n_items) scores, the same dot products for many users at once."""
        return self.user_vectors(histories) @ self.item_vectors().T

    def scorer(self):
        """Adapter for ``agent.retrieval.interactions.rank_users``: scorer(user, history) -> scores."""
        return lambda user, history: self.scores(history)

    def evaluate(self, split: Split, split_name: SplitName, ks: Sequence[int] = (1, 5, 10, 20, 50)) -> dict[str, float]:
        """Protocol metrics on ``split_name`` (all items ranked, visible history masked)."""
        from finetune.retriever.fusion import ranks_from_matrix

        histories = [split.history(u, split_name) for u in range(split.n_users)]
        return evaluate(ranks_from_matrix(split, self.score_matrix(histories), split_name), ks=ks)

    def save(self, directory: Path) -> Path:
        """Weights as safetensors, config + item ids + training info as JSON."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _save_tensors(_state_tensors(self.network), directory / WEIGHTS_FILE)
        _write_json(directory / CONFIG_FILE, {
            "model": "SASRec", "config": asdict(self.config), "n_items": self.n_items,
            "dim": self.dim, "item_ids": self.item_ids, "info": self.info,
        })
        return directory


def load_sasrec(directory: Path) -> SasrecModel:
    """Load the best model saved by ``train_sasrec`` (or ``SasrecModel.save``)."""
    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).exists():
            raise FileNotFoundError(f"{directory / name} missing: train with finetune.retriever.pipeline first")
    meta = json.loads((directory / CONFIG_FILE).read_text())
    if meta.get("model") != "SASRec":
        raise ValueError(f"{directory / CONFIG_FILE} describes {meta.get('model')!r}, not a SASRec model")
    config = SasrecConfig(**meta["config"])
    network = _build_network(meta["n_items"], config)
    _load_state(network, directory / WEIGHTS_FILE)
    return SasrecModel(network, config, meta["n_items"], meta.get("item_ids", []), meta.get("info"))


# ---------------------------------------------------------------- persistence (no pickle)


def _state_tensors(network) -> dict:
    return {k: v.detach().contiguous().clone() for k, v in network.state_dict().items()}


def _save_tensors(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)  # a crash never leaves a half-written checkpoint under the real name


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def _load_state(network, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not fit this config: missing {missing}, unexpected {unexpected}")


# ---------------------------------------------------------------- training


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
    torch = _torch()
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
    current = asdict(config)
    return [k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]]


def train_sasrec(
    split: Split,
    config: SasrecConfig | None = None,
    out_dir: Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> SasrecModel:
    """Train on the split's training sequences; early-stop on validation NDCG@10.

    After every epoch the validation items are ranked against all items (training history
    masked). The best epoch's weights are kept (and saved to ``out_dir`` as model.safetensors +
    config.json); the latest epoch's weights and optimizer state go to ``out_dir/checkpoint`` so
    an interrupted run continues where it stopped (``resume``) and ends with the same weights as
    an uninterrupted one. Each epoch is seeded from (seed, epoch), which makes batch order,
    dropout and sampled negatives independent of where a run was resumed.
    """
    torch = _torch()
    config = config or SasrecConfig()
    previous = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(split, config, out_dir, resume, progress)
    finally:
        torch.set_num_threads(previous)


def _train(split: Split, config: SasrecConfig, out_dir: Path | None, resume: bool, progress: bool) -> SasrecModel:
    torch = _torch()
    from tqdm.auto import tqdm

    n_items = split.n_items
    torch.manual_seed(config.seed)
    network = _build_network(n_items, config)
    if config.weight_decay:
        optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.Adam(network.parameters(), lr=config.lr, betas=(0.9, 0.98))

    windows = training_windows(split.train, config)
    if not windows:
        raise ValueError("no training sequence has 2 or more items: nothing to learn from")
    lengths = np.array([len(w) for w in windows])
    val_histories = [split.history(u, "val") for u in range(split.n_users)]
    state: dict[str, Any] = {"epoch": 0, "best_ndcg": -1.0, "best_epoch": 0, "stale": 0,
                             "best_val": {}, "log": [], "train_seconds": 0.0}
    best_weights = None

    out_dir = Path(out_dir) if out_dir is not None else None
    ckpt = out_dir / CHECKPOINT_DIR if out_dir is not None else None
    if ckpt is not None and resume and (ckpt / STATE_FILE).exists():
        saved = json.loads((ckpt / STATE_FILE).read_text())
        differs = _same_run(saved["config"], config)
        if differs or saved["n_items"] != n_items:
            raise ValueError(
                f"{ckpt} holds a run with different settings ({', '.join(differs) or 'n_items'}); "
                "use another out_dir or pass resume=False to start over"
            )
        from safetensors.torch import load_file

        last = load_file(str(ckpt / LAST_FILE))
        network.load_state_dict({k[len("model."):]: v for k, v in last.items() if k.startswith("model.")})
        restore_optimizer(optimizer, last, saved["optimizer"]["param_groups"], OPTIMIZER_PREFIX)
        state = saved["state"]
        if (out_dir / WEIGHTS_FILE).exists():
            from safetensors.torch import load_file as load_best

            best_weights = load_best(str(out_dir / WEIGHTS_FILE))

    model = SasrecModel(network, config, n_items, split.item_ids)
    bar = tqdm(total=config.epochs, initial=state["epoch"], desc="SASRec", unit="epoch", disable=not progress)
    from finetune.retriever.fusion import history_mask, ranks_from_matrix

    val_mask = history_mask(split, "val")
    while state["epoch"] < config.epochs and state["stale"] < config.patience:
        if config.max_minutes and state["train_seconds"] >= 60 * config.max_minutes:
            break
        epoch = state["epoch"] + 1
        started = time.perf_counter()
        seed = _epoch_seed(config.seed, epoch)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        batches = epoch_batches(lengths, config, rng)
        network.train()
        total, count = 0.0, 0
        for chosen in batches:
            batch = _pad_left([windows[i] for i in chosen], config.max_len + 1)
            loss = _batch_loss(network, batch, config, n_items, rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            count += len(batch)
            bar.set_postfix(loss=f"{total / count:.4f}", best=f"{max(state['best_ndcg'], 0):.4f}")
        network.eval()
        model._item_vectors = None
        val = evaluate(ranks_from_matrix(split, model.score_matrix(val_histories), "val", val_mask), ks=(1, 5, 10, 20))
        seconds = time.perf_counter() - started
        state["train_seconds"] += seconds
        state["epoch"] = epoch
        state["log"].append({"epoch": epoch, "loss": total / count, "val_ndcg@10": val["NDCG@10"],
                             "val_recall@10": val["Recall@10"], "seconds": seconds})
        if val["NDCG@10"] > state["best_ndcg"]:
            state.update(best_ndcg=val["NDCG@10"], best_epoch=epoch, stale=0, best_val=val)
            best_weights = _state_tensors(network)
            if out_dir is not None:  # the best model so far is loadable even if the run dies
                model.info = _info(state)
                model.save(out_dir)
        else:
            state["stale"] += 1
        if ckpt is not None:
            ckpt.mkdir(parents=True, exist_ok=True)
            tensors = optimizer_tensors(optimizer, OPTIMIZER_PREFIX)
            tensors.update({f"model.{k}": v for k, v in _state_tensors(network).items()})
            _save_tensors(tensors, ckpt / LAST_FILE)
            _write_json(ckpt / STATE_FILE, {"config": asdict(config), "n_items": n_items,
                                            "optimizer": {"param_groups": optimizer.state_dict()["param_groups"]},
                                            "state": state})
        bar.update(1)
        bar.set_postfix(loss=f"{total / count:.4f}", val=f"{val['NDCG@10']:.4f}", best=f"{state['best_ndcg']:.4f}")
    bar.close()

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
