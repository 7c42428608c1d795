"""Shared fixtures of the attack tests: a digits MLP trained in the test session."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from advlab.models import ModelWrapper

Data = tuple[ModelWrapper, torch.Tensor, torch.Tensor]


@pytest.fixture(scope="session")
def digits() -> Data:
    """A trained digits MLP and its 397 held-out test images and labels."""
    bunch = load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    torch.manual_seed(0)
    perm = torch.randperm(len(x))
    train, test = perm[:1400], perm[1400:]
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model = ModelWrapper(net, mean=[0.3], std=[0.4])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(x[train]), y[train]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    return model, x[test], y[test]
