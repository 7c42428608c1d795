"""A numpy network as a torch classifier, so every attack of advlab can drive it.

The network is reached through a small duck-typed protocol, which `advlab.scratch.net.Sequential`
implements: ``forward(x) -> scores`` on a (N, D) float array, then ``backward(dscores) -> dx``,
the vector-Jacobian product of the same forward pass. Pixels are mapped to the network's input
by torch operations (layout, scale, mean, std), so gradients flow through them by autograd;
only the network itself runs in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models.wrapper import predict_labels


class NumpyNet(Protocol):
    """What `NumpyClassifier` needs of a numpy network."""

    def forward(self, x: np.ndarray) -> np.ndarray: ...

    def backward(self, dout: np.ndarray) -> np.ndarray: ...


class _NumpyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, net: NumpyNet) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.net = net
        scores = net.forward(x.detach().cpu().numpy())
        return torch.as_tensor(np.asarray(scores), dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        net = ctx.net
        xn = x.detach().cpu().numpy()
        net.forward(xn)  # the layers' caches must belong to this input
        dx = net.backward(grad.detach().cpu().numpy().astype(xn.dtype, copy=False))
        return torch.as_tensor(np.asarray(dx), dtype=x.dtype, device=x.device), None


class NumpyClassifier(nn.Module):
    """A numpy network behind the `ModelWrapper` interface: pixels in `bounds`, logits out.

    Args:
        net: Numpy network with ``forward`` and ``backward`` (see the module docstring).
        bounds: (min, max) of the pixels the classifier accepts.
        layout: How the network flattens an image: ``"nhwc"`` (channels last, as
            `images.reshape(N, -1)` of advlab's uint8 arrays) or ``"nchw"``.
        scale: Pixels are multiplied by it first (255 for a network trained on 0-255 values).
        mean: Subtracted next, one value per flattened input feature (the mean image) or one.
        std: Divided by last, the same shapes as `mean`.

    Returns:
        Calling it on (N, C, H, W) pixels returns (N, num_classes) scores as a float tensor
        of the input's dtype; gradients with respect to the pixels come from `net.backward`.

    References:
        CS231n (Stanford), assignment 2 "Network Visualization", for the numpy protocol.
    """

    mean: torch.Tensor | None
    std: torch.Tensor | None

    def __init__(
        self,
        net: NumpyNet,
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        layout: str = "nhwc",
        scale: float = 1.0,
        mean: np.ndarray | Sequence[float] | float | None = None,
        std: np.ndarray | Sequence[float] | float | None = None,
    ) -> None:
        super().__init__()
        if layout not in ("nhwc", "nchw"):
            raise ConfigError(f"layout: expected 'nhwc' or 'nchw', found {layout!r}")
        if not callable(getattr(net, "forward", None)) or not callable(
            getattr(net, "backward", None)
        ):
            raise ConfigError(
                f"net: expected a numpy network with forward(x) and backward(dout), found "
                f"{type(net).__name__}"
            )
        self.net = net
        self.layout = layout
        self.scale = float(scale)
        self._bounds = (float(bounds[0]), float(bounds[1]))
        self.register_buffer("mean", None if mean is None else _flat(mean))
        self.register_buffer("std", None if std is None else _flat(std))
        if self.std is not None and not bool((self.std > 0).all()):
            raise ConfigError("std: expected every entry > 0")

    @property
    def bounds(self) -> tuple[float, float]:
        return self._bounds

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, K)
        flat = (x.permute(0, 2, 3, 1) if self.layout == "nhwc" else x).reshape(x.shape[0], -1)
        flat = flat * self.scale
        if self.mean is not None:
            flat = flat - self.mean.to(flat)
        if self.std is not None:
            flat = flat / self.std.to(flat)
        out: torch.Tensor = _NumpyFunction.apply(flat, self.net)
        return out

    def predict(self, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Predicted labels (N,) int64, without gradients, chunk by chunk."""
        return predict_labels(self, x, batch_size)


def _flat(values: np.ndarray | Sequence[float] | float) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float32).reshape(1, -1))
