"""Optimizer state through flat named tensors: a round trip restores every slot exactly."""

from __future__ import annotations

import torch

from finetune.checkpoint import optimizer_tensors, restore_optimizer


def _stepped_adamw(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 3)).pow(2).mean().backward()
        optimizer.step()
    return model, optimizer


def test_round_trip_restores_every_slot():
    _, optimizer = _stepped_adamw(0)
    tensors = optimizer_tensors(optimizer, "opt.")
    # 4 parameters x (step, exp_avg, exp_avg_sq), all under the prefix
    assert len(tensors) == 12 and all(k.startswith("opt.") for k in tensors)
    assert torch.equal(tensors["opt.0.exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])

    _, fresh = _stepped_adamw(1)  # different state, same shapes
    restore_optimizer(fresh, {**tensors, "model.weight": torch.zeros(1)}, fresh.state_dict()["param_groups"], "opt.")
    want, got = optimizer.state_dict()["state"], fresh.state_dict()["state"]
    assert want.keys() == got.keys()
    for index in want:
        for slot, value in want[index].items():
            assert torch.equal(got[index][slot], value), (index, slot)


def test_flattened_tensors_are_copies():
    _, optimizer = _stepped_adamw(0)
    tensors = optimizer_tensors(optimizer, "p.")
    tensors["p.0.exp_avg"].add_(1.0)
    assert not torch.equal(tensors["p.0.exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
