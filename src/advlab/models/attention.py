"""Pixel-wise attention: a learned per-pixel gate in front of a classifier (APR's second part).

`PixelAttention` is a small convolutional branch that looks at the (normalised) image and
produces one weight in (0, 1) per pixel; the image is multiplied by it before the classifier.
After a wrapper's normalisation a pixel at the dataset mean is 0, so a weight near 0 replaces
the pixel by the mean colour: the gate can learn to suppress pixels that stand out from their
neighbourhood, which is what a one-pixel perturbation looks like. The registered model
``pixel_attention`` is such a gate in front of any registered model (``base``), so that the model
store can rebuild a defended model from its name and config; `advlab.defenses.with_pixel_attention`
inserts the gate into an already trained wrapper instead.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models.registry import MODELS, create_model


class PixelAttention(nn.Module):
    """Per-pixel gate: ``x * sigmoid(conv(relu(conv(x))))``, one weight per pixel for all channels.

    Args:
        channels: Input channels.
        hidden: Channels of the branch's hidden layer.
        kernel: Odd kernel size of both convolutions (3: each weight sees a 5 x 5 neighbourhood).
        init_open: The gate's initial value, in (0, 1): the last layer starts with tiny
            weights (normal, std 1e-3, so that every layer gets a gradient from the first
            step) and the bias `logit(init_open)`, so at first every pixel passes multiplied
            by about `init_open`.

    Returns:
        Called on (N, C, H, W), returns the gated (N, C, H, W); `gate` returns the weights
        (N, 1, H, W) with it, for regularisers (`advlab.defenses.logits_and_gate`), and
        `attention` the weights alone, for figures.
    """

    def __init__(
        self, channels: int = 3, *, hidden: int = 16, kernel: int = 3, init_open: float = 0.98
    ) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("hidden", hidden), ("kernel", kernel)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: expected an int >= 1, found {value!r}")
        if kernel % 2 == 0:
            raise ConfigError(f"kernel: expected an odd size (same-size output), found {kernel}")
        if not 0.0 < float(init_open) < 1.0:
            raise ConfigError(f"init_open: expected a number in (0, 1), found {init_open!r}")
        self.branch = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel, padding=kernel // 2),
            nn.ReLU(),
            nn.Conv2d(hidden, 1, kernel, padding=kernel // 2),
        )
        last = self.branch[2]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.normal_(last.weight, std=1e-3)
        nn.init.constant_(last.bias, math.log(init_open / (1.0 - init_open)))
        self.channels = channels

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's weights for `x`: (N, 1, H, W) in (0, 1)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ConfigError(
                f"PixelAttention: expected (N, {self.channels}, H, W) inputs, "
                f"found shape {tuple(x.shape)}"
            )
        return torch.sigmoid(self.branch(x))

    def gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The gated `x` (N, C, H, W) and the weights that gated it (N, 1, H, W)."""
        weights = self.attention(x)
        return x * weights, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(x)[0]


def pixel_attention(
    *,
    base: str,
    base_config: dict[str, Any] | None = None,
    in_channels: int = 3,
    num_classes: int = 10,
    image_size: int = 32,
    in_shape: tuple[int, ...] | None = None,
    hidden: int = 16,
    kernel: int = 3,
    init_open: float = 0.98,
) -> nn.Sequential:
    """`PixelAttention` followed by the registered model `base` (built with `base_config` and
    whichever of `in_channels`, `num_classes`, `image_size`, `in_shape` its factory takes).

    Returns:
        ``nn.Sequential(PixelAttention, base model)``: the layout `with_pixel_attention` gives.
    """
    if base == "pixel_attention":
        raise ConfigError("pixel_attention: base must be another model, found 'pixel_attention'")
    params = inspect.signature(MODELS.get(base)).parameters
    known: dict[str, Any] = {"in_channels": in_channels, "num_classes": num_classes,
                             "image_size": image_size, "in_shape": in_shape}  # fmt: skip
    cfg = {k: v for k, v in known.items() if k in params and v is not None}
    net = create_model(base, **{**cfg, **(base_config or {})})
    layer = PixelAttention(in_channels, hidden=hidden, kernel=kernel, init_open=init_open)
    return nn.Sequential(layer, net)


MODELS.add(
    "pixel_attention",
    pixel_attention,
    "APR's per-pixel attention gate in front of a registered model (base=...)",
)
