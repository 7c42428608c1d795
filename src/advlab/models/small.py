"""Small networks for quick CPU work: an MLP and a compact CNN."""

from __future__ import annotations

import math

import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models.registry import MODELS
from advlab.models.weights import set_weights_source


class LeCunTanh(nn.Module):
    """LeCun's scaled tanh with a linear leak: 1.7159 tanh(2x/3) + 0.01x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0)) + 0.01 * x


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "lecun": LeCunTanh,
}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation {name!r}: expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


INITS = ("torch", "glorot_uniform", "glorot_normal", "he_normal", "lecun_normal")


def init_linear(layer: nn.Linear, init: str) -> None:
    """Initialise a linear layer's weights by name; biases become zero (Keras's default) for
    every scheme but ``torch`` (PyTorch's own default, left untouched)."""
    if init not in INITS:
        raise ConfigError(f"init {init!r}: expected one of {', '.join(INITS)}")
    if init == "torch":
        return
    w = layer.weight
    fan_in = w.shape[1]
    with torch.no_grad():
        if init == "glorot_uniform":
            nn.init.xavier_uniform_(w)
        elif init == "glorot_normal":
            nn.init.xavier_normal_(w)
        elif init == "he_normal":
            nn.init.normal_(w, 0.0, math.sqrt(2.0 / fan_in))
        else:  # lecun_normal
            nn.init.normal_(w, 0.0, math.sqrt(1.0 / fan_in))
        if layer.bias is not None:
            layer.bias.zero_()


def mlp(
    *,
    in_shape: tuple[int, ...] = (1, 28, 28),
    num_classes: int = 10,
    depth: int = 2,
    width: int = 128,
    activation_name: str = "relu",
    init: str = "torch",
) -> nn.Sequential:
    """Fully connected net: `depth` hidden layers of `width` units; returns logits.

    Args:
        in_shape: Shape of one input, (C, H, W) or (D,).
        num_classes: Output units (softmax is applied by the loss, not the model).
        depth: Number of hidden layers (0 gives a linear softmax classifier).
        width: Units per hidden layer.
        activation_name: relu, tanh, sigmoid or lecun.
        init: ``torch`` (PyTorch's default), ``glorot_uniform`` (Keras's default),
            ``glorot_normal``, ``he_normal`` or ``lecun_normal``; all but ``torch`` zero the
            biases.
    """
    if depth < 0 or width < 1:
        raise ConfigError(f"mlp: expected depth >= 0 and width >= 1, got {depth} and {width}")
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(in_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), activation(activation_name)]
        fan_in = width
    layers.append(nn.Linear(fan_in, num_classes))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            init_linear(layer, init)
    return set_weights_source(nn.Sequential(*layers), "random")


def small_cnn(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    width: int = 32,
    image_size: int = 28,
) -> nn.Sequential:
    """conv(3x3)-ReLU-pool x2, then a dense layer: a fast CNN for MNIST/CIFAR-sized inputs."""
    if image_size % 4:
        raise ConfigError(f"small_cnn: image_size must be a multiple of 4, got {image_size}")
    side = image_size // 4
    net = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * side * side, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )
    return set_weights_source(net, "random")


MODELS.add("mlp", mlp, "fully connected net (depth, width, activation_name)")
MODELS.add("small_cnn", small_cnn, "two conv-pool blocks and a dense layer; fast on CPU")
