"""Pixel-wise attention: a learned per-pixel gate in front of a classifier (APR's second part).

`PixelAttention` is a small convolutional branch that looks at the (normalised) image and
produces one weight in (0, 1) per pixel; the image is multiplied by it before the classifier.
After the wrapper's normalisation a pixel at the dataset mean is 0, so a weight near 0 replaces
the pixel by the mean colour: the gate can learn to suppress pixels that stand out from their
neighbourhood, which is what a one-pixel perturbation looks like. `with_pixel_attention`
inserts it into an existing `ModelWrapper` (the lab's hint: modify the loaded ResNet-18 rather
than build a new network), with the gate initialised nearly open so the wrapped model starts
out computing almost what it did.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models import ModelWrapper


class PixelAttention(nn.Module):
    """Per-pixel gate: ``x * sigmoid(conv(relu(conv(x))))``, one weight per pixel for all channels.

    Args:
        channels: Input channels.
        hidden: Channels of the branch's hidden layer.
        kernel: Odd kernel size of both convolutions (3: each weight sees a 5 x 5 neighbourhood).
        init_open: The gate's initial value everywhere, in (0, 1): the last layer starts with
            zero weights and the bias `logit(init_open)`, so at first every pixel passes
            multiplied by `init_open`.

    Returns:
        Called on (N, C, H, W), returns the gated (N, C, H, W); the weights of the last call
        are kept in `last_map`, (N, 1, H, W), for regularisers and figures.
    """

    last_map: torch.Tensor | None

    def __init__(self, channels: int = 3, *, hidden: int = 16, kernel: int = 3,
                 init_open: float = 0.98) -> None:  # fmt: skip
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
        nn.init.zeros_(last.weight)
        nn.init.constant_(last.bias, math.log(init_open / (1.0 - init_open)))
        self.channels = channels
        self.last_map = None

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's weights for `x`: (N, 1, H, W) in (0, 1)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ConfigError(f"PixelAttention: expected (N, {self.channels}, H, W) inputs, "
                              f"found shape {tuple(x.shape)}")  # fmt: skip
        return torch.sigmoid(self.branch(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.attention(x)
        self.last_map = weights
        return x * weights


def with_pixel_attention(
    model: ModelWrapper,
    *,
    hidden: int = 16,
    kernel: int = 3,
    init_open: float = 0.98,
    channels: int | None = None,
) -> ModelWrapper:
    """A new wrapper around `PixelAttention` followed by `model`'s network (shared, not copied).

    The attention layer sits after the wrapper's normalisation, on the network's input; bounds,
    mean and std are `model`'s. `hidden`, `kernel`, `init_open` are `PixelAttention`'s;
    `channels` defaults to the network's first convolution's input channels.
    """
    if not isinstance(model, ModelWrapper):
        raise ConfigError(f"with_pixel_attention: expected a ModelWrapper, found "
                          f"{type(model).__name__}")  # fmt: skip
    if attention_layer(model) is not None:
        raise ConfigError("with_pixel_attention: the model already has a PixelAttention layer")
    layer = PixelAttention(_input_channels(model) if channels is None else channels,
                           hidden=hidden, kernel=kernel, init_open=init_open)  # fmt: skip
    mean = None if model.mean is None else model.mean.flatten().tolist()
    std = None if model.std is None else model.std.flatten().tolist()
    param = next(model.parameters(), None)
    if param is not None:
        layer = layer.to(param.device)
    return ModelWrapper(nn.Sequential(layer, model.net), bounds=model.bounds, mean=mean, std=std)


def attention_layer(model: nn.Module) -> PixelAttention | None:
    """The first `PixelAttention` inside `model`, or None."""
    return next((m for m in model.modules() if isinstance(m, PixelAttention)), None)


def _input_channels(model: ModelWrapper) -> int:
    for module in model.net.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    if model.mean is not None:
        return int(model.mean.numel())
    raise ConfigError("with_pixel_attention: cannot tell the model's input channels (no "
                      "Conv2d, no mean); pass channels=")  # fmt: skip
