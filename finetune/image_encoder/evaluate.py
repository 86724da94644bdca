"""Held-out quality of the image encoder: image -> card retrieval, and facet (genre) prediction
zero-shot through the card space, each against its chance or frequency baseline."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def own_ranks(queries: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of target i among all targets for query i (cosine; vectors L2-normalised).
    Ties count against the query (a constant scorer does not get lucky)."""
    scores = queries @ targets.T
    own = np.diag(scores)
    return (scores >= own[:, None]).sum(axis=1) - 1


def recall_at(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ranks < k)) if len(ranks) else 0.0


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC (Mann-Whitney U with tied ranks averaged); None without both classes."""
    from scipy.stats import rankdata

    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def label_matrix(labels: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> np.ndarray:
    index = {name: j for j, name in enumerate(vocabulary)}
    out = np.zeros((len(labels), len(vocabulary)), dtype=bool)
    for i, values in enumerate(labels):
        for value in values:
            if value in index:
                out[i, index[value]] = True
    return out


def auc_summary(scores: np.ndarray, truth: np.ndarray) -> dict:
    """Macro AUC (mean over labels with both classes) and micro AUC (all item-label pairs pooled)."""
    per_label = [auc(scores[:, j], truth[:, j]) for j in range(truth.shape[1])]
    macro = [a for a in per_label if a is not None]
    return {"macro_auc": round(float(np.mean(macro)), 4) if macro else None,
            "micro_auc": round(auc(scores.ravel(), truth.ravel()) or 0.0, 4), "labels_scored": len(macro)}


def centroids(vectors: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per label, the normalised mean vector of the items that have it (zeros for an unused label)."""
    sums = truth.T.astype(np.float32) @ vectors
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.divide(sums, norms, out=np.zeros_like(sums), where=norms > 0)


def heldout_report(image_vectors: np.ndarray, card_vectors: np.ndarray, heldout: np.ndarray,
                   labels: Sequence[Sequence[str]], prompt_vectors: np.ndarray | None, vocabulary: list[str]) -> dict:
    """Every number of the held-out table. ``image_vectors`` and ``card_vectors`` cover all items;
    ``prompt_vectors`` (one per vocabulary entry) are the text embedder's vectors of label prompts."""
    train, test = ~heldout, heldout
    ranks = own_ranks(image_vectors[test], card_vectors[test])
    n = int(test.sum())
    truth = label_matrix(labels, vocabulary)
    frequency = truth[train].mean(axis=0)
    label_centroids = centroids(card_vectors[train], truth[train])
    scorers = {
        "frequency baseline": np.tile(frequency, (n, 1)),
        "image -> label centroid": image_vectors[test] @ label_centroids.T,
        "true card -> label centroid (upper bound)": card_vectors[test] @ label_centroids.T,
    }
    if prompt_vectors is not None:
        scorers["image -> label prompt"] = image_vectors[test] @ prompt_vectors.T
    return {
        "heldout_items": n,
        "retrieval": {"recall@1": round(recall_at(ranks, 1), 4), "recall@10": round(recall_at(ranks, 10), 4),
                      "chance@10": round(min(1.0, 10 / n), 4), "median_rank": int(np.median(ranks)) + 1},
        "labels": {name: auc_summary(scores, truth[test]) for name, scores in scorers.items()},
        "vocabulary": vocabulary,
    }
