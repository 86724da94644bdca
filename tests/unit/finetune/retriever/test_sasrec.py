"""SASRec on tiny synthetic sequences: it learns order, is deterministic, resumes, round-trips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agent.core.errors import InputError
from agent.retrieval.sasrec import SasrecArchitecture, load_sasrec
from eval.metrics import evaluate
from finetune.retriever.sasrec import train_sasrec, training_windows
from finetune.retriever.sasrec_config import SasrecConfig
from tests.fakes.eval_data import rank_users
from tests.fakes.finetune_data import cycle_split

TINY = SasrecConfig(hidden=16, n_blocks=1, dropout=0.1, max_len=10, epochs=40, batch_size=16,
                    lr=1e-2, patience=40, threads=1, seed=0)


@pytest.fixture(scope="module")
def cycle():
    return cycle_split()


@pytest.fixture(scope="module")
def trained(cycle, tmp_path_factory):
    out = tmp_path_factory.mktemp("sasrec")
    return train_sasrec(cycle, TINY, out, progress=False), out


def test_learns_the_next_item_of_a_cycle(cycle, trained):
    model, _ = trained
    for name in ("val", "test"):
        metrics = evaluate(rank_users(cycle, lambda u, h: model.scores(h), name), ks=(1,))
        assert metrics["NDCG@1"] >= 0.9, (name, metrics)
    assert model.info["best_val"]["NDCG@1"] >= 0.9
    assert 1 <= model.info["best_epoch"] <= model.info["epochs_run"]


def test_scores_are_a_plain_dot_product_of_user_and_item_vectors(cycle, trained):
    model, _ = trained
    items = model.item_vectors()
    assert items.shape == (cycle.n_items, TINY.hidden + 1) and items.dtype == np.float32
    history = cycle.history(3, "test")
    user = model.user_vector(history)
    assert user.shape == (TINY.hidden + 1,) and user[-1] == 1.0  # the folded-in bias
    np.testing.assert_array_equal(model.scores(history), items @ user)
    # ... and they are what the network itself computes (embedding product + output bias)
    with torch.no_grad():
        states = model.network(torch.from_numpy((history + 1)[None]))
        logits = model.network.logits(states[:, -1])[0].numpy()
    np.testing.assert_allclose(model.scores(history), logits, rtol=1e-5, atol=1e-5)
    # batching users does not change a user's vector (padding is masked)
    batch = model.user_vectors([cycle.history(u, "test") for u in range(5)])
    np.testing.assert_allclose(batch[3], user, rtol=1e-5, atol=1e-5)


def test_without_output_bias_vectors_have_hidden_size(cycle):
    config = TINY.with_overrides(output_bias=False, epochs=1)
    model = train_sasrec(cycle, config, progress=False)
    assert model.item_vectors().shape == (cycle.n_items, config.hidden)
    history = cycle.history(0, "val")
    np.testing.assert_array_equal(model.scores(history), model.item_vectors() @ model.user_vector(history))


def test_save_load_round_trip_gives_identical_scores(cycle, trained):
    model, out = trained
    loaded = load_sasrec(out)
    assert loaded.config == SasrecArchitecture.from_saved(model.config.model_dump())
    assert loaded.item_ids == cycle.item_ids
    histories = [cycle.history(u, "test") for u in range(cycle.n_users)]
    np.testing.assert_array_equal(loaded.score_matrix(histories), model.score_matrix(histories))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", "config.json", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["model"] == "SASRec" and meta["dim"] == TINY.hidden + 1
    assert meta["config"] == model.config.model_dump()  # the whole training config is kept
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.pkl")) and not list(out.rglob("*.tmp"))


def _weights(model):
    return {k: v.clone() for k, v in model.network.state_dict().items()}


def test_same_seed_same_weights_other_seed_other_weights(cycle):
    config = TINY.with_overrides(epochs=3)
    a = _weights(train_sasrec(cycle, config, progress=False))
    b = _weights(train_sasrec(cycle, config, progress=False))
    c = _weights(train_sasrec(cycle, config.with_overrides(seed=1), progress=False))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resumed_run_ends_like_an_uninterrupted_one(cycle, tmp_path):
    config = TINY.with_overrides(epochs=4, dropout=0.2)
    straight = train_sasrec(cycle, config, tmp_path / "straight", progress=False)
    train_sasrec(cycle, config.with_overrides(epochs=2), tmp_path / "resumed", progress=False)
    state = json.loads((tmp_path / "resumed" / "checkpoint" / "state.json").read_text())
    assert state["state"]["epoch"] == 2
    resumed = train_sasrec(cycle, config, tmp_path / "resumed", progress=False)
    assert resumed.info["epochs_run"] == 4
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [e["loss"] for e in straight.info["log"]] == [e["loss"] for e in resumed.info["log"]]
    # a checkpoint of a different model is refused rather than silently mixed
    with pytest.raises(ValueError, match="different settings"):
        train_sasrec(cycle, config.with_overrides(hidden=8), tmp_path / "resumed", progress=False)


def test_bce_loss_option_trains(cycle):
    config = TINY.with_overrides(loss="bce", n_negatives=4, epochs=2)
    model = train_sasrec(cycle, config, progress=False)
    assert np.isfinite(model.info["log"][-1]["loss"])


def test_training_windows_cover_every_interaction_once():
    config = TINY.with_overrides(max_len=3)
    seq = np.arange(8)
    windows = training_windows([seq], config)
    targets = np.concatenate([w[1:] for w in windows])
    assert sorted(targets.tolist()) == list(range(1, 8))
    assert all(len(w) <= 4 for w in windows)
    last = training_windows([seq], config.with_overrides(windows="last"))
    assert len(last) == 1 and last[0].tolist() == [4, 5, 6, 7]


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="n_heads"):
        SasrecConfig(hidden=10, n_heads=3)
    with pytest.raises(ValueError, match="loss"):
        SasrecConfig(loss="hinge")
    with pytest.raises(InputError, match="dropout"):
        TINY.with_overrides(dropout=1.0)
    help_lines = {line.split(" ")[0]: line for line in SasrecConfig.help().splitlines()}
    assert {"hidden", "dropout", "max_len", "seed", "epochs", "batch_size", "lr", "patience"} <= set(help_lines)
    assert all(line.split("): ", 1)[1] for line in help_lines.values())


def test_epoch_batches_use_every_window_once_and_group_similar_lengths():
    from finetune.retriever.sasrec import epoch_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 200, size=1000)
    config = TINY.with_overrides(batch_size=32, length_buckets=8)
    batches = epoch_batches(lengths, config, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert max(len(b) for b in batches) == 32
    padded = sum(len(b) * lengths[b].max() for b in batches)
    plain = epoch_batches(lengths, config.with_overrides(length_buckets=1), np.random.default_rng(1))
    assert padded < sum(len(b) * lengths[b].max() for b in plain)


def test_empty_and_overlong_histories_score_finitely(cycle, trained):
    model, _ = trained
    assert np.isfinite(model.scores([])).all()
    long = np.tile(np.arange(cycle.n_items), 3)  # longer than max_len: only the tail is read
    np.testing.assert_allclose(model.scores(long), model.scores(long[-TINY.max_len:]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="0..19"):
        model.scores([cycle.n_items])
