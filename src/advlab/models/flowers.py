"""The Flowers-17 CNNs of seed 004: the baseline and Mk-1 to Mk-6, with the report's counts.

The report (tables 1 and 4) gives, per network, the number of convolutions, pooling layers and
dense layers, the padding, the activation and the exact parameter count for 128 x 128 x 3
inputs and 17 classes; the filter counts were only in its notebooks. The layouts below are ones
that reproduce every count exactly with 3 x 3 convolutions (stride 1), 2 x 2 max pooling
(stride 2, floor), one hidden dense layer and the 17-way output, as Keras builds them:

======== ======= ========== ================================================== ====== ===========
model    padding activation layers                                              dense  parameters
======== ======= ========== ================================================== ====== ===========
baseline same    ReLU       32 P                                               64      8,390,673
mk1      same    ReLU       64 P 128 P 256 P 512 P                             512    18,337,425
mk2      same    ReLU       32 32 P 64 64 P 128 256 P                          512    33,998,257
mk3      same    ReLU       32 64 P 128 128 128 P 256 256 P 512 512 P          1024   38,386,513
mk4      valid   LeakyReLU  32 32 P 64 64 P 128 256 P                          512    19,318,193
mk5      valid   tanh       64 P 128 128 P 256 256 256 P 512 P                 1024   11,285,777
mk6      same    LeakyReLU  64 64 P 64 128 P 256 256 P                         512    34,598,417
======== ======= ========== ================================================== ====== ===========

(P: a pooling layer.) Mk-4 is Mk-2 without padding, which is what the report says of it, and
its count fixes Mk-2's pooling positions too; Mk-5 is VGG-16's first three blocks and one more
convolution. With 'same' padding the count does not depend on where the pools sit, so Mk-1, Mk-3
and Mk-6 follow VGG's blocks. LeakyReLU uses Keras' default slope 0.3. Weights start as Keras'
(glorot-uniform kernels, zero biases). Other input sizes are accepted (the counts then differ:
the dense layer sees a different feature map); a 'valid' network refuses a size that its
convolutions shrink to nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from torch import nn

from advlab.errors import ConfigError
from advlab.models import weights as _weights
from advlab.models.registry import MODELS

POOL = "P"
LEAKY_SLOPE = 0.3
"""Keras' default `LeakyReLU` slope (alpha), the report's framework."""


@dataclass(frozen=True)
class FlowersArch:
    """One network of the report: convolution filters with pools (`POOL`) between them."""

    layers: tuple[int | str, ...]
    padding: bool
    activation: str
    dense: int
    parameters: int  # for 128 x 128 x 3 inputs and 17 classes, as the report gives it


# fmt: off
ARCHITECTURES: dict[str, FlowersArch] = {
    "baseline": FlowersArch((32, POOL), True, "relu", 64, 8_390_673),
    "mk1": FlowersArch((64, POOL, 128, POOL, 256, POOL, 512, POOL), True, "relu", 512,
                       18_337_425),
    "mk2": FlowersArch((32, 32, POOL, 64, 64, POOL, 128, 256, POOL), True, "relu", 512,
                       33_998_257),
    "mk3": FlowersArch((32, 64, POOL, 128, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL), True,
                       "relu", 1024, 38_386_513),
    "mk4": FlowersArch((32, 32, POOL, 64, 64, POOL, 128, 256, POOL), False, "leaky_relu", 512,
                       19_318_193),
    "mk5": FlowersArch((64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, POOL), False, "tanh",
                       1024, 11_285_777),
    "mk6": FlowersArch((64, 64, POOL, 64, 128, POOL, 256, 256, POOL), True, "leaky_relu", 512,
                       34_598_417),
}
# fmt: on


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(LEAKY_SLOPE)
    return nn.Tanh()


def flowers_cnn(
    *,
    arch: str = "baseline",
    in_channels: int = 3,
    num_classes: int = 17,
    image_size: int = 128,
) -> nn.Sequential:
    """One of the report's Flowers-17 CNNs (see the module docstring for the layouts).

    Args:
        arch: "baseline" or "mk1" ... "mk6".
        in_channels: Input channels (3).
        num_classes: Output logits (17).
        image_size: Side of the square input (the report's 128).

    Returns:
        An `nn.Sequential` (conv/act/pool ..., flatten, fc1, act, fc) mapping (N, C, S, S) to
        (N, num_classes) logits.

    References:
        Seed 004 (Flowers-17 report), tables 1 and 4.
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(f"arch: expected one of {sorted(ARCHITECTURES)}, found {arch!r}")
    for name, value in (
        ("in_channels", in_channels),
        ("num_classes", num_classes),
        ("image_size", image_size),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"flowers_cnn: {name} must be an int >= 1, found {value!r}")
    spec = ARCHITECTURES[arch]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, side, conv, pool = in_channels, image_size, 0, 0
    for item in spec.layers:
        if item == POOL:
            pool += 1
            side //= 2
            layers[f"pool{pool}"] = nn.MaxPool2d(2)
        else:
            conv += 1
            assert isinstance(item, int)
            layers[f"conv{conv}"] = nn.Conv2d(channels, item, 3, padding=1 if spec.padding else 0)
            layers[f"act{conv}"] = _activation(spec.activation)
            channels = item
            side -= 0 if spec.padding else 2
        if side < 1:
            raise ConfigError(
                f"flowers_cnn: arch {arch!r} without padding shrinks a "
                f"{image_size} x {image_size} input to nothing; use image_size "
                f">= {minimum_size(arch)}"
            )
    layers["flatten"] = nn.Flatten()
    layers["fc1"] = nn.Linear(channels * side * side, spec.dense)
    layers["act_fc1"] = _activation(spec.activation)
    layers["fc"] = nn.Linear(spec.dense, num_classes)
    model = nn.Sequential(layers)
    for module in model.modules():  # Keras' defaults: glorot-uniform kernels, zero biases
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    _weights.set_weights_source(model, _weights.RANDOM)
    return model


def minimum_size(arch: str) -> int:
    """The smallest input side `arch` accepts (1 with padding)."""
    spec = ARCHITECTURES[arch]
    if spec.padding:
        return 1
    size = 1
    for item in reversed(spec.layers):  # undo the layers from a 1 x 1 output
        size = size * 2 if item == POOL else size + 2
    return size


def _factory(arch: str) -> Any:
    def build(*, in_channels: int = 3, num_classes: int = 17, image_size: int = 128) -> nn.Module:
        return flowers_cnn(
            arch=arch, in_channels=in_channels, num_classes=num_classes, image_size=image_size
        )

    spec = ARCHITECTURES[arch]
    build.__name__ = f"flowers_{arch}"
    build.__doc__ = (
        f"Flowers-17 {arch} of seed 004: `flowers_cnn(arch={arch!r})`, "
        f"{spec.parameters:,} parameters at 128 x 128 x 3, 17 classes."
    )
    return build


for _name, _spec in ARCHITECTURES.items():
    _label = "Baseline" if _name == "baseline" else f"Mk-{_name[2:]}"
    MODELS.add(
        f"flowers_{_name}",
        _factory(_name),
        f"Flowers-17 {_label} of seed 004 ({_spec.parameters:,} params at 128 x 128)",
    )

__all__ = ["ARCHITECTURES", "FlowersArch", "flowers_cnn", "minimum_size"]
