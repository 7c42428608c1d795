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

import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models import ModelWrapper
from advlab.models.attention import PixelAttention


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
        raise ConfigError(
            f"with_pixel_attention: expected a ModelWrapper, found {type(model).__name__}"
        )
    if attention_layer(model) is not None:
        raise ConfigError("with_pixel_attention: the model already has a PixelAttention layer")
    layer = PixelAttention(
        _input_channels(model) if channels is None else channels,
        hidden=hidden,
        kernel=kernel,
        init_open=init_open,
    )
    mean = None if model.mean is None else model.mean.flatten().tolist()
    std = None if model.std is None else model.std.flatten().tolist()
    param = next(model.parameters(), None)
    if param is not None:
        layer = layer.to(param.device)
    return ModelWrapper(nn.Sequential(layer, model.net), bounds=model.bounds, mean=mean, std=std)


def attention_layer(model: nn.Module) -> PixelAttention | None:
    """The first `PixelAttention` inside `model`, or None."""
    return next((m for m in model.modules() if isinstance(m, PixelAttention)), None)


def logits_and_gate(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`model(x)` and the weights its attention gate applied in that same pass: logits (N, K)
    and the gate (N, 1, H, W) in (0, 1), both in the autograd graph, for a regulariser on the
    gate (`DefenseObjective`'s `attention_weight`).

    `model` is laid out as `with_pixel_attention` and the registered model ``pixel_attention``
    build it: a `ModelWrapper` whose network is ``nn.Sequential(PixelAttention, ...)``, or such
    a network alone. ConfigError for any other model.
    """
    net = model.net if isinstance(model, ModelWrapper) else model
    if not (isinstance(net, nn.Sequential) and len(net) > 0 and isinstance(net[0], PixelAttention)):
        found = "none" if attention_layer(model) is None else "one elsewhere in the model"
        raise ConfigError(
            "model: expected a PixelAttention layer first in its network (as "
            f"with_pixel_attention puts it), found {found}"
        )
    layer: PixelAttention = net[0]
    z = _normalised(model, x) if isinstance(model, ModelWrapper) else x
    gated, weights = layer.gate(z)
    logits: torch.Tensor = net[1:](gated)
    return logits, weights


def gate_map(model: ModelWrapper, x: torch.Tensor) -> torch.Tensor | None:
    """The attention gate of `model` on images `x` (N, C, H, W) in its bounds: (N, H, W) in
    (0, 1), white = open; None when the model has no `PixelAttention` layer."""
    layer = attention_layer(model)
    if layer is None:
        return None
    with torch.no_grad():
        return layer.attention(_normalised(model, x))[:, 0]


def _normalised(model: ModelWrapper, x: torch.Tensor) -> torch.Tensor:
    """`x` as `model`'s network sees it: normalised as `ModelWrapper.forward` does."""
    return x if model.mean is None or model.std is None else (x - model.mean) / model.std


def open_pixels(
    model: ModelWrapper, x: torch.Tensor, fraction: float = 0.25
) -> torch.Tensor | None:
    """Bool (N, H, W): each image's `fraction` most open pixels under `model`'s gate (ties
    included), for an attacker who places pixels where the gate lets them through; None when
    the model has no gate."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"fraction: expected a number in (0, 1], found {fraction!r}")
    gate = gate_map(model, x)
    if gate is None:
        return None
    k = max(1, round(fraction * gate[0].numel()))
    kth = gate.flatten(1).topk(k, dim=1).values[:, -1]
    return gate >= kth[:, None, None]


def _input_channels(model: ModelWrapper) -> int:
    for module in model.net.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    if model.mean is not None:
        return int(model.mean.numel())
    raise ConfigError(
        "with_pixel_attention: cannot tell the model's input channels (no "
        "Conv2d, no mean); pass channels="
    )
