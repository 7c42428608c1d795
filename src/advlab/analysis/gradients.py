"""Gradient diagnostics: per-layer weight gradients on one batch, activation derivative ranges.

Used by the deep-MLP study of seed 001 (vanishing and exploding gradients): one backward pass
fills every layer's gradient, then one reduction per weight tensor reads them out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's linear layers, input to output (module registration order)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def weight_grad_max(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Max |d loss / d W| of each linear layer's weights (input to output) on batch (x, y).

    The loss is the mean cross-entropy of the model's logits; parameter gradients are computed
    with `torch.autograd.grad` in one pass, so the model's own `.grad` fields are untouched.
    """
    layers = linear_layers(model)
    if not layers:
        raise ValueError("weight_grad_max: the model has no nn.Linear layers")
    was_training = model.training
    model.eval()
    try:
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, [layer.weight for layer in layers])
    finally:
        model.train(was_training)
    return torch.stack([g.abs().amax() for g in grads]).detach().cpu().numpy()


def derivative_range(
    fn: nn.Module | torch.nn.Module, lo: float = -20.0, hi: float = 20.0, n: int = 400_001
) -> tuple[float, float]:
    """(min, max) of the derivative of the elementwise function `fn` on a dense grid of
    [lo, hi], by autograd in float64."""
    x = torch.linspace(lo, hi, n, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return float(g.min()), float(g.max())


def _sigmoid_prime(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1 - s)


#: Closed-form derivatives of the MLP activations (the report's equations), as functions.
DERIVATIVES = {
    "relu": lambda z: (z > 0).to(z.dtype),
    "tanh": lambda z: 1 - torch.tanh(z) ** 2,
    "sigmoid": _sigmoid_prime,
    "lecun": lambda z: 1.7159 * (2.0 / 3.0) * (1 - torch.tanh(z * (2.0 / 3.0)) ** 2) + 0.01,
}
