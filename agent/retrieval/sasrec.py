"""SASRec inference (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018).

A small causal transformer reads a user's items in time order; its final hidden state is a *user
vector* and its (tied) item embeddings are *item vectors*, so retrieval is a plain dot product that
a vector store (Chroma) can serve. If the model has an output bias, the bias is folded in by
appending a constant 1 to the user vector and the bias to each item vector; ``scores`` is computed
from exactly those two arrays, so what training evaluates is what the store ranks.

This module builds the network, loads and saves it (safetensors + JSON, no pickle) and scores;
training lives in finetune.retriever.sasrec, whose ``SasrecConfig`` extends ``SasrecArchitecture``
with the training settings. A saved config.json holds the whole training config; loading reads only
the architecture fields from it.

Positions are counted from the end of the sequence (0 = most recent item). With left padding this
is what the original model's slot index encodes, and it lets a batch be trimmed to its longest
sequence without changing any result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import ConfigDict, Field, model_validator

from agent.core.config import ConfigBase
from agent.core.io import atomic_write_bytes, read_json, write_json
from agent.retrieval.artifacts import model_folder

MODEL_DIR = "sasrec"  # the model's folder inside a retriever folder
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class SasrecArchitecture(ConfigBase):
    """The network's shape and how many users one forward pass scores: what inference needs."""

    model_config = ConfigDict(frozen=True)

    hidden: int = Field(
        64, ge=1,
        description="Width of item/position embeddings and hidden states; the item and user vectors have "
        "this size (+1 with an output bias).",
    )
    n_blocks: int = Field(2, ge=1, description="Number of causal self-attention blocks.")
    n_heads: int = Field(1, ge=1, description="Attention heads per block; must divide hidden.")
    dropout: float = Field(
        0.3, ge=0.0, lt=1.0,
        description="Dropout on embeddings, attention weights and block outputs; ml-latest-small is small, "
        "so it needs a lot.",
    )
    max_len: int = Field(
        200, ge=1,
        description="Most recent items the model reads; longer histories are cut to their last max_len items.",
    )
    output_bias: bool = Field(
        True,
        description="Learn a per-item output bias (a popularity prior). It is folded into the vectors: item "
        "vector = [embedding, bias], user vector = [hidden, 1].",
    )
    eval_batch_size: int = Field(256, ge=1, description="Users per forward pass when computing user vectors.")

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> Self:
        if self.hidden % self.n_heads:
            raise ValueError(f"hidden ({self.hidden}) must be a positive multiple of n_heads ({self.n_heads})")
        return self

    @classmethod
    def from_saved(cls, config: Mapping[str, Any]) -> SasrecArchitecture:
        """The architecture fields of a saved (training) config; the training fields are ignored."""
        return cls.from_mapping({k: v for k, v in config.items() if k in cls.model_fields}, source=CONFIG_FILE)


def import_torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise ImportError("SASRec needs torch: pip install 'torch==2.14.1'") from exc
    return torch


def _block_class(config: SasrecArchitecture):
    """The transformer block's class for ``config`` (defined in a function, like the network)."""
    torch = import_torch()
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

    return Block


def build_network(n_items: int, config: SasrecArchitecture):
    """The torch module; built inside a function so importing this file stays light."""
    torch = import_torch()
    nn = torch.nn
    Block = _block_class(config)

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


def pad_left(histories: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """Token matrix (dense item + 1, 0 = pad), each row the last ``max_len`` items, right-aligned."""
    width = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    out = np.zeros((len(histories), width), dtype=np.int64)
    for row, items in enumerate(histories):
        tail = np.asarray(items, dtype=np.int64)[-max_len:]
        if tail.size:
            out[row, width - tail.size:] = tail + 1
    return out


class SasrecModel:
    """A trained SASRec: user vectors, item vectors and scores, with save/load.

    ``config`` is the architecture (a training ``SasrecConfig`` while training, whose every field
    ``save`` writes); a loaded model has the architecture fields only.
    """

    def __init__(self, network, config: SasrecArchitecture, n_items: int, item_ids: Sequence[str] = (),
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
            torch = import_torch()
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
        torch = import_torch()
        rows = []
        with torch.no_grad():
            for start in range(0, len(histories), self.config.eval_batch_size):
                chunk = histories[start:start + self.config.eval_batch_size]
                for h in chunk:
                    h = np.asarray(h)
                    if h.size and (h.min() < 0 or h.max() >= self.n_items):
                        raise ValueError(f"history item ids must lie in 0..{self.n_items - 1}")
                seq = torch.from_numpy(pad_left(chunk, self.config.max_len))
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

    def save(self, directory: Path) -> Path:
        """Weights as safetensors, config + item ids + training info as JSON."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_tensors(state_tensors(self.network), directory / WEIGHTS_FILE)
        write_json(directory / CONFIG_FILE, {
            "model": "SASRec", "config": self.config.model_dump(), "n_items": self.n_items,
            "dim": self.dim, "item_ids": self.item_ids, "info": self.info,
        })
        return directory


def load_sasrec(directory: Path) -> SasrecModel:
    """Load the model saved by training, from a retriever folder (its sasrec/) or the model folder."""
    directory = model_folder(directory, MODEL_DIR, (CONFIG_FILE, WEIGHTS_FILE))
    meta = read_json(directory / CONFIG_FILE)
    if meta.get("model") != "SASRec":
        raise ValueError(f"{directory / CONFIG_FILE} describes {meta.get('model')!r}, not a SASRec model")
    config = SasrecArchitecture.from_saved(meta["config"])
    network = build_network(meta["n_items"], config)
    load_state(network, directory / WEIGHTS_FILE)
    return SasrecModel(network, config, meta["n_items"], meta.get("item_ids", []), meta.get("info"))


# ---------------------------------------------------------------- persistence (no pickle)


def state_tensors(network) -> dict:
    """A detached copy of the network's weights, ready for safetensors."""
    return {k: v.detach().contiguous().clone() for k, v in network.state_dict().items()}


def save_tensors(tensors: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors, written atomically: a crash never leaves a half-written file under the real name."""
    from safetensors.torch import save

    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_state(network, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    missing, unexpected = network.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not fit this config: missing {missing}, unexpected {unexpected}")
