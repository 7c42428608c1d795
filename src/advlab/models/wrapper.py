"""A classifier together with its input bounds and normalisation, so attacks work in pixel space."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from advlab.errors import ConfigError


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Puts every submodule in eval mode and restores each one's own train/eval flag on exit."""
    states = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in states:
            module.training = training


class ModelWrapper(nn.Module):
    """Classifier that takes pixels in `bounds` and normalises them itself.

    Args:
        model: Classifier mapping normalised (N, C, H, W) inputs to (N, num_classes) logits.
        bounds: (min, max) of the pixel values the wrapper accepts.
        mean: Per-channel mean subtracted before `model`; give `std` with it.
        std: Per-channel standard deviation divided by before `model`; all entries > 0.

    Returns:
        Calling the wrapper on (N, C, H, W) pixels in `bounds` returns (N, num_classes) logits.

    References:
        Rauber, Zimmermann, Bethge, Brendel 2020, "Foolbox Native: Fast adversarial attacks to
        benchmark the robustness of machine learning models in PyTorch, TensorFlow, and JAX".
    """

    mean: torch.Tensor | None
    std: torch.Tensor | None

    def __init__(
        self,
        model: nn.Module,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        low, high = float(bounds[0]), float(bounds[1])
        if not low < high:
            raise ConfigError(f"bounds: expected (min, max) with min < max, found {bounds!r}")
        if (mean is None) != (std is None):
            raise ConfigError(f"mean, std: expected both or neither, found mean={mean} std={std}")
        self.net = model
        self._bounds = (low, high)
        mean_t = std_t = None
        if mean is not None and std is not None:
            mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
            std_t = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
            if mean_t.shape != std_t.shape:
                raise ConfigError(f"mean, std: expected equal lengths, found {mean} and {std}")
            if not bool((std_t > 0).all()):
                raise ConfigError(f"std: expected every entry > 0, found {std}")
        self.register_buffer("mean", mean_t)  # (1, C, 1, 1) or None
        self.register_buffer("std", std_t)

    @property
    def bounds(self) -> tuple[float, float]:
        return self._bounds

    @property
    def inner(self) -> nn.Module:
        return self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) in bounds -> (N, K)
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        out: torch.Tensor = self.net(x)
        return out

    def predict(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Predicted labels (N,) int64, computed in eval mode without gradients, chunk by chunk."""
        return predict_labels(self, x, batch_size)


def predict_labels(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """`model`'s predicted labels (N,) int64, in eval mode without gradients, chunk by chunk."""
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected an int >= 1, found {batch_size}")
    with eval_mode(model), torch.no_grad():
        return torch.cat([model(chunk).argmax(dim=1) for chunk in x.split(batch_size)])


def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """`model`'s softmax probabilities (N, K), in eval mode without gradients, chunk by chunk."""
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected an int >= 1, found {batch_size}")
    with eval_mode(model), torch.no_grad():
        return torch.cat([model(chunk).softmax(dim=1) for chunk in x.split(batch_size)])
