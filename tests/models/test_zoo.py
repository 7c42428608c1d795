"""Contract tests over every registered model, and the fixed configurations of the zoo."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models import MODELS, create_model
from advlab.models.weights import weights_source

# name -> (factory kwargs, one input's shape (C, H, W)); every registered model needs an entry.
DEFAULTS: dict[str, tuple[dict[str, Any], tuple[int, ...]]] = {
    "mlp": ({"in_shape": (1, 8, 8), "num_classes": 5, "depth": 2, "width": 16}, (1, 8, 8)),
    "small_cnn": ({"in_channels": 3, "num_classes": 5, "width": 4, "image_size": 12}, (3, 12, 12)),
    "mnist_cnn": ({"num_classes": 5}, (1, 28, 28)),
    "fast_mnist": ({"num_classes": 5}, (1, 28, 28)),
    "lenet5": ({"num_classes": 5, "image_size": 28}, (1, 28, 28)),
    "cifar_cnn": ({"num_classes": 5, "width": 8}, (3, 32, 32)),
    "fer_cnn": ({"num_classes": 5, "width": 4}, (1, 48, 48)),
    "resnet18": ({"num_classes": 5, "stem": "cifar"}, (3, 16, 16)),
    **{
        f"flowers_{a}": ({"num_classes": 5, "image_size": s}, (3, s, s))
        for a, s in (
            ("baseline", 16),
            ("mk1", 16),
            ("mk2", 16),
            ("mk3", 16),
            ("mk4", 36),
            ("mk5", 66),
            ("mk6", 16),
        )
    },
    "pixel_attention": (
        {
            "base": "small_cnn",
            "base_config": {"width": 4},
            "in_channels": 3,
            "num_classes": 5,
            "image_size": 12,
        },
        (3, 12, 12),
    ),
}

BATCH = 3


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build(name: str) -> tuple[nn.Module, torch.Tensor, int]:
    if name not in DEFAULTS:
        pytest.fail(f"model {name!r} is registered but has no entry in DEFAULTS of {__file__}")
    kwargs, shape = DEFAULTS[name]
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    x = torch.rand(BATCH, *shape)  # (N, C, H, W) in [0, 1]
    return model, x, int(kwargs["num_classes"])


@pytest.mark.parametrize("name", MODELS.names())
def test_contract_shape_dtype_gradients(name: str) -> None:
    model, x, num_classes = _build(name)
    model.train()
    out = model(x)
    assert out.shape == (BATCH, num_classes)
    assert out.dtype == torch.float32
    loss = nn.functional.cross_entropy(out, torch.arange(BATCH) % num_classes)
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient reached {pname}"
        assert bool(param.grad.abs().sum() > 0), f"{name}: zero gradient at {pname}"


@pytest.mark.parametrize("name", MODELS.names())
def test_contract_eval_deterministic(name: str) -> None:
    model, x, _ = _build(name)
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        ("mnist_cnn", {}, 34_826),
        ("fast_mnist", {}, 166_406),
        ("mnist_cnn", {"image_size": 28, "num_classes": 10}, 34_826),
        ("lenet5", {"image_size": 32, "num_classes": 10}, 61_706),
        ("lenet5", {"image_size": 28, "num_classes": 10}, 61_706),
        ("lenet5", {"activation_name": "relu", "pooling": "max"}, 61_706),
        ("cifar_cnn", {"num_classes": 10}, 288_746),
        ("resnet18", {"num_classes": 10, "stem": "imagenet"}, 11_181_642),
        ("resnet18", {"num_classes": 10, "stem": "cifar"}, 11_173_962),
        ("resnet18", {"num_classes": 1000}, 11_689_512),  # torchvision's published count
    ],
)
def test_parameter_counts(name: str, kwargs: dict[str, Any], expected: int) -> None:
    assert _n_params(create_model(name, **kwargs)) == expected


@pytest.mark.parametrize(("image_size", "side"), [(28, 28), (32, 32)])
def test_lenet5_takes_28_and_32(image_size: int, side: int) -> None:
    model = create_model("lenet5", image_size=image_size)
    assert model(torch.rand(2, 1, side, side)).shape == (2, 10)


def test_mnist_cnn_layout_for_export() -> None:
    model = create_model("mnist_cnn")
    assert isinstance(model, nn.Sequential)
    assert [name for name, _ in model.named_children()] == [
        "conv1",
        "relu1",
        "pool1",
        "conv2",
        "relu2",
        "pool2",
        "flatten",
        "dropout",
        "fc",
    ]
    assert model.fc.in_features == 64 * 5 * 5
    assert not model.conv1.bias.detach().any()  # Keras initialises biases to zero


def test_resnet18_stems() -> None:
    imagenet = create_model("resnet18", stem="imagenet")
    cifar = create_model("resnet18", stem="cifar")
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert cifar.conv1.padding == (1, 1)
    assert isinstance(cifar.maxpool, nn.Identity)
    x = torch.rand(1, 3, 32, 32)
    for model in (imagenet, cifar):
        model.eval()
        with torch.no_grad():
            assert model(x).shape == (1, 10)
        assert weights_source(model) == "random"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("mnist_cnn", {"bogus": 1}),
        ("mnist_cnn", {"dropout": 1.0}),
        ("mnist_cnn", {"image_size": 6}),
        ("fast_mnist", {"image_size": 30}),
        ("mnist_cnn", {"image_size": "28"}),
        ("mnist_cnn", {"dropout": "0.5"}),
        ("lenet5", {"pooling": ["avg"]}),
        ("lenet5", {"image_size": 30}),
        ("lenet5", {"activation_name": "softplus"}),
        ("lenet5", {"pooling": "median"}),
        ("cifar_cnn", {"width": 0}),
        ("cifar_cnn", {"num_classes": 2.5}),
        ("resnet18", {"stem": "tiny"}),
        ("resnet18", {"weights": "cifar10"}),
        ("resnet18", {"pretrained": True}),
    ],
)
def test_bad_kwargs_raise_config_error(name: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=name):
        create_model(name, **kwargs)
