"""Per-layer gradient collection and activation derivative ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from advlab.analysis.gradients import derivative_range, weight_grad_max
from advlab.errors import ConfigError
from advlab.models import create_model
from advlab.models.small import ACTIVATIONS


def test_weight_grad_max_matches_hand_computed_network() -> None:
    # 2 -> 2 -> 2 network, identity-free: x -> W1 x + b1 -> tanh -> W2 h + b2 -> CE
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2))
    x = torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float32)
    y = torch.tensor([1, 0])
    got = weight_grad_max(net, x, y)
    W1, b1 = net[0].weight.detach(), net[0].bias.detach()
    W2, b2 = net[2].weight.detach(), net[2].bias.detach()
    z = x @ W1.T + b1
    h = torch.tanh(z)
    s = h @ W2.T + b2
    p = torch.softmax(s, 1)
    ds = (p - torch.eye(2)[y]) / 2  # mean over the batch
    dW2 = ds.T @ h
    dz = (ds @ W2) * (1 - h * h)
    dW1 = dz.T @ x
    np.testing.assert_allclose(got, [dW1.abs().max(), dW2.abs().max()], rtol=1e-5)
    assert net[0].weight.grad is None  # the model's own grads are left alone


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sigmoid", (0.0, 0.25)),
        ("tanh", (0.0, 1.0)),
        ("relu", (0.0, 1.0)),
        ("lecun", (0.01, 1.7159 * 2 / 3 + 0.01)),
    ],
)
def test_activation_derivative_ranges(name: str, expected: tuple[float, float]) -> None:
    lo, hi = derivative_range(ACTIVATIONS[name]())
    assert hi == pytest.approx(expected[1], rel=1e-9)
    assert expected[0] <= lo < expected[0] + 1e-6  # approached in the tails, never below
    if name == "lecun":  # the leak keeps the derivative above 0.01 everywhere
        assert lo > 0.01


def test_mlp_inits() -> None:
    for init, std in [("he_normal", math.sqrt(2 / 64)), ("lecun_normal", math.sqrt(1 / 64))]:
        torch.manual_seed(0)
        net = create_model("mlp", in_shape=(64,), depth=1, width=2000, init=init)
        w = net[1].weight.detach()
        assert float(w.std()) == pytest.approx(std, rel=0.02)
        assert float(net[1].bias.detach().abs().max()) == 0.0
    net = create_model("mlp", in_shape=(64,), depth=1, width=2000, init="glorot_uniform")
    limit = math.sqrt(6 / (64 + 2000))
    assert float(net[1].weight.detach().abs().max()) <= limit
    assert float(net[1].weight.detach().abs().max()) > 0.99 * limit
    with pytest.raises(ConfigError, match="init"):
        create_model("mlp", init="orthogonal")


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "lecun"])
def test_closed_form_derivatives_equal_autograd(name: str) -> None:
    from advlab.analysis.gradients import DERIVATIVES

    z = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    z = z[z.abs() > 1e-9].requires_grad_(True)  # ReLU has no derivative at 0
    (auto,) = torch.autograd.grad(ACTIVATIONS[name]()(z).sum(), z)
    torch.testing.assert_close(DERIVATIVES[name](z.detach()), auto, rtol=1e-12, atol=1e-14)
