"""Image classifiers of the labs: the Keras MNIST convnet, LeNet-5, a fast CIFAR CNN, ResNet-18.

Every factory takes keyword-only configuration, returns an `nn.Module` that maps (N, C, H, W)
inputs to (N, num_classes) logits (softmax belongs to the loss), and records where its weights
came from in ``model.advlab_weights`` (see `advlab.models.weights`).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from advlab.errors import ConfigError
from advlab.models import weights as _weights
from advlab.models.registry import MODELS
from advlab.models.small import ACTIVATIONS, activation
from advlab.validation import check_int


def _keras_init(model: nn.Module) -> None:
    # Keras' defaults for Conv2D and Dense: glorot_uniform kernels, zero biases.
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def mnist_cnn(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    dropout: float = 0.5,
) -> nn.Sequential:
    """The Keras "Simple MNIST convnet": conv-pool-conv-pool-flatten-dropout-dense.

    Conv2D(32, 3x3, relu) - MaxPool(2) - Conv2D(64, 3x3, relu) - MaxPool(2) - Flatten -
    Dropout(0.5) - Dense(num_classes), 'valid' convolutions, initialised like Keras (glorot
    uniform kernels, zero biases). For 1x28x28 inputs and 10 classes: 34,826 parameters.

    Flatten order: PyTorch flattens the (64, 5, 5) feature map channel-major (C, H, W), Keras
    (channels_last) flattens (H, W, C). An exporter to Keras must permute the rows of
    ``fc.weight.T`` from CHW to HWC order; the layers are named (conv1, pool1, conv2, pool2,
    flatten, dropout, fc) for that mapping.

    Args:
        in_channels: Input channels (1 for MNIST).
        num_classes: Output logits.
        image_size: Side of the square input; at least 10.
        dropout: Drop probability before the dense layer, in [0, 1).

    Returns:
        An `nn.Sequential` mapping (N, in_channels, image_size, image_size) to (N, num_classes).

    References:
        Chollet, "Simple MNIST convnet", Keras code examples (2015, updated 2020),
        https://keras.io/examples/vision/mnist_convnet/.
    """
    check_int("mnist_cnn in_channels", in_channels, minimum=1)
    check_int("mnist_cnn num_classes", num_classes, minimum=1)
    check_int("mnist_cnn image_size", image_size, minimum=1)
    if image_size < 10:
        raise ConfigError(f"mnist_cnn: image_size must be >= 10, found {image_size!r}")
    if not isinstance(dropout, int | float) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"mnist_cnn: dropout must be in [0, 1), found {dropout!r}")
    side = ((image_size - 2) // 2 - 2) // 2  # 28 -> 26 -> 13 -> 11 -> 5
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(in_channels, 32, 3),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(32, 64, 3),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            flatten=nn.Flatten(),  # (N, 64, side, side) -> (N, 64*side*side), CHW order
            dropout=nn.Dropout(dropout),
            fc=nn.Linear(64 * side * side, num_classes),
        )
    )
    _keras_init(model)
    _weights.set_weights_source(model, _weights.RANDOM)
    return model


def fast_mnist(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 28,
    width: int = 16,
    hidden: int = 100,
) -> nn.Sequential:
    """The MNIST network of Wong, Rice & Kolter's fast adversarial training.

    Conv2d(width, 4x4, stride 2, pad 1) - ReLU - Conv2d(2 width, 4x4, stride 2, pad 1) - ReLU -
    Flatten - Dense(hidden) - ReLU - Dense(num_classes), PyTorch's default initialisation. For
    1x28x28 inputs and 10 classes: 166,406 parameters, about a quarter of `mnist_cnn`'s
    multiply-adds, yet with the capacity FGSM-RS training at eps 0.3 needs (Madry et al. found
    robustness at that radius to need a wider network than the plain classifier's).

    Args:
        in_channels: Input channels (1 for MNIST).
        num_classes: Output logits.
        image_size: Side of the square input, divisible by 4.
        width: Filters of the first convolution (the second has twice as many).
        hidden: Units of the hidden dense layer.

    Returns:
        An `nn.Sequential` mapping (N, in_channels, image_size, image_size) to (N, num_classes).

    References:
        Wong, Rice & Kolter, "Fast is better than free: revisiting adversarial training",
        ICLR 2020 (MNIST model of their code release).
    """
    check_int("fast_mnist in_channels", in_channels, minimum=1)
    check_int("fast_mnist num_classes", num_classes, minimum=1)
    check_int("fast_mnist image_size", image_size, minimum=1)
    check_int("fast_mnist width", width, minimum=1)
    check_int("fast_mnist hidden", hidden, minimum=1)
    if image_size % 4:
        raise ConfigError(f"fast_mnist: image_size must be divisible by 4, found {image_size}")
    side = image_size // 4
    model = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(in_channels, width, 4, stride=2, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            relu2=nn.ReLU(),
            flatten=nn.Flatten(),
            fc1=nn.Linear(2 * width * side * side, hidden),
            relu3=nn.ReLU(),
            fc=nn.Linear(hidden, num_classes),
        )
    )
    _weights.set_weights_source(model, _weights.RANDOM)
    return model


_POOLS: dict[str, type[nn.Module]] = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


def lenet5(
    *,
    in_channels: int = 1,
    num_classes: int = 10,
    image_size: int = 32,
    activation_name: str = "tanh",
    pooling: str = "avg",
) -> nn.Sequential:
    """LeNet-5: C1 conv 6@5x5 - S2 pool - C3 conv 16@5x5 - S4 pool - C5 fc120 - F6 fc84 - output.

    What is implemented, against the paper: C3 is fully connected to the six S2 maps (the paper
    connects each C3 map to a subset, 60 of 96 pairs); S2/S4 are plain 2x2 pooling without the
    paper's trainable coefficient and bias, and no activation follows them; C5 is a dense layer
    (equal to a 5x5 convolution on the 5x5 S4 maps); the output is a linear layer giving logits
    instead of Euclidean RBF units. Default activation ``tanh`` and ``avg`` pooling follow the
    paper's choice of a squashing function and subsampling (the paper's exact squashing,
    1.7159 tanh(2x/3), is ``activation_name="lecun"``, which adds seed 001's 0.01x leak);
    ``relu`` and ``max`` give the modern variant. For 1x32x32 inputs and 10 classes:
    61,706 parameters (C1 156, C3 2,416, C5 48,120, F6 10,164, output 850).

    Args:
        in_channels: Input channels.
        num_classes: Output logits.
        image_size: 32 (the paper's input), or 28 (MNIST), which C1 pads by 2 to act as 32.
        activation_name: tanh (default), relu, sigmoid or lecun.
        pooling: avg (default) or max.

    Returns:
        An `nn.Sequential` mapping (N, in_channels, image_size, image_size) to (N, num_classes).

    References:
        LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document
        recognition", Proceedings of the IEEE 86(11).
    """
    check_int("lenet5 in_channels", in_channels, minimum=1)
    check_int("lenet5 num_classes", num_classes, minimum=1)
    if image_size not in (28, 32):
        raise ConfigError(f"lenet5: image_size must be 28 or 32, found {image_size!r}")
    if not isinstance(activation_name, str) or activation_name not in ACTIVATIONS:
        raise ConfigError(
            f"lenet5: activation_name must be one of {sorted(ACTIVATIONS)}, "
            f"found {activation_name!r}"
        )
    if not isinstance(pooling, str) or pooling not in _POOLS:
        raise ConfigError(f"lenet5: pooling must be one of {sorted(_POOLS)}, found {pooling!r}")
    pool = _POOLS[pooling]
    model = nn.Sequential(
        OrderedDict(
            c1=nn.Conv2d(in_channels, 6, 5, padding=(32 - image_size) // 2),  # -> (6, 28, 28)
            act1=activation(activation_name),
            s2=pool(2),  # -> (6, 14, 14)
            c3=nn.Conv2d(6, 16, 5),  # -> (16, 10, 10)
            act3=activation(activation_name),
            s4=pool(2),  # -> (16, 5, 5)
            flatten=nn.Flatten(),
            c5=nn.Linear(16 * 5 * 5, 120),
            act5=activation(activation_name),
            f6=nn.Linear(120, 84),
            act6=activation(activation_name),
            output=nn.Linear(84, num_classes),
        )
    )
    _weights.set_weights_source(model, _weights.RANDOM)
    return model


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    # No conv bias: the BatchNorm shift that follows makes it redundant.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def cifar_cnn(*, in_channels: int = 3, num_classes: int = 10, width: int = 32) -> nn.Sequential:
    """A small fast CIFAR CNN: three blocks of two conv3x3-BN-ReLU and a 2x2 max-pool.

    Block widths are width, 2*width, 4*width; global average pooling and one linear layer give
    the logits, so any input of side >= 8 works. With width 32 and 10 classes: 288,746
    parameters, about 39 M multiply-adds per 32x32 image; the model for tests and quick CPU runs.

    Args:
        in_channels: Input channels.
        num_classes: Output logits.
        width: Channels of the first block.

    Returns:
        An `nn.Sequential` mapping (N, in_channels, H, W) to (N, num_classes).

    References:
        Simonyan, Zisserman 2015, "Very deep convolutional networks for large-scale image
        recognition", ICLR (stacked 3x3 blocks); Ioffe, Szegedy 2015, "Batch normalization",
        ICML.
    """
    check_int("cifar_cnn in_channels", in_channels, minimum=1)
    check_int("cifar_cnn num_classes", num_classes, minimum=1)
    check_int("cifar_cnn width", width, minimum=1)
    layers: list[nn.Module] = []
    c_in = in_channels
    for c_out in (width, 2 * width, 4 * width):  # side 32 -> 16 -> 8 -> 4
        layers += [*_conv_bn_relu(c_in, c_out), *_conv_bn_relu(c_out, c_out), nn.MaxPool2d(2)]
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    model = nn.Sequential(*layers)
    _weights.set_weights_source(model, _weights.RANDOM)
    return model


def fer_cnn(
    *,
    in_channels: int = 1,
    num_classes: int = 7,
    width: int = 32,
    blocks: int = 4,
    dropout: float = 0.3,
) -> nn.Sequential:
    """A VGG-style network for 48 x 48 grayscale faces (FER2013): `blocks` blocks of two
    conv3x3-BN-ReLU and a 2x2 max-pool (widths width, 2 width, 4 width, ...), global average
    pooling, dropout and one linear layer. With the defaults (four blocks: 48 -> 24 -> 12 -> 6
    -> 3) it has 1,174,439 parameters and about 120 M multiply-adds per face.

    Args:
        in_channels: Input channels (1: grayscale).
        num_classes: Output logits (7 FER2013 emotions).
        width: Channels of the first block.
        blocks: Number of conv blocks (each halves the side).
        dropout: Dropout rate before the linear layer.

    Returns:
        An `nn.Sequential` mapping (N, in_channels, H, W) to (N, num_classes); it exports to
        Keras (.h5) layer for layer.

    References:
        Simonyan, Zisserman 2015, "Very deep convolutional networks for large-scale image
        recognition", ICLR; Khaireddin, Chen 2021, "Facial emotion recognition: state of the
        art performance on FER2013", arXiv:2105.03588 (a VGG variant at 73.3%).
    """
    check_int("fer_cnn in_channels", in_channels, minimum=1)
    check_int("fer_cnn num_classes", num_classes, minimum=1)
    check_int("fer_cnn width", width, minimum=1)
    check_int("fer_cnn blocks", blocks, minimum=1)
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"fer_cnn: dropout must be in [0, 1), found {dropout!r}")
    layers: list[nn.Module] = []
    c_in = in_channels
    for b in range(blocks):
        c_out = width * 2**b
        layers += [*_conv_bn_relu(c_in, c_out), *_conv_bn_relu(c_out, c_out), nn.MaxPool2d(2)]
        c_in = c_out
    layers += [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(c_in, num_classes),
    ]
    model = nn.Sequential(*layers)
    _weights.set_weights_source(model, _weights.RANDOM)
    return model


STEMS = ("imagenet", "cifar")


def resnet18(
    *,
    num_classes: int = 10,
    stem: str = "imagenet",
    weights: str | None = None,
) -> nn.Module:
    """torchvision's ResNet-18 with a selectable stem and optional ImageNet weights.

    ``stem="imagenet"`` is the unmodified torchvision model (7x7 stride-2 conv1 and a 3x3
    stride-2 max-pool; a 32x32 input reaches layer4 as 1x1), as seed 000 asks.
    ``stem="cifar"`` replaces conv1 by a 3x3 stride-1 padding-1 convolution and the max-pool by
    an identity, the usual CIFAR variant. Parameters for 10 classes: imagenet stem 11,181,642;
    cifar stem 11,173,962.

    ``weights="imagenet"`` loads torchvision's ``ResNet18_Weights.IMAGENET1K_V1`` from disk (see
    `advlab.models.weights`; nothing is downloaded, a missing file raises
    `WeightsNotFoundError`). With num_classes != 1000 the backbone is loaded and ``fc`` keeps its
    random initialisation; with the cifar stem ``conv1`` and ``bn1`` (whose statistics belong to
    the 7x7 conv) stay random too. ``model.advlab_weights`` says which: ``"random"``,
    ``"imagenet:resnet18-f37072fd.pth"`` or ``"imagenet:resnet18-f37072fd.pth (random: fc)"``.

    Args:
        num_classes: Output logits.
        stem: imagenet or cifar.
        weights: None or "random" for random initialisation, "imagenet" for ImageNet weights.

    Returns:
        A torchvision `ResNet` mapping (N, 3, H, W) to (N, num_classes).

    Raises:
        ConfigError: Unknown stem or weights, num_classes < 1.
        WeightsNotFoundError: weights="imagenet" and the file is not installed.

    References:
        He, Zhang, Ren, Sun 2016, "Deep residual learning for image recognition", CVPR.
    """
    check_int("resnet18 num_classes", num_classes, minimum=1)
    if stem not in STEMS:
        raise ConfigError(f"resnet18: stem must be one of {list(STEMS)}, found {stem!r}")
    if weights not in (None, _weights.RANDOM, "imagenet"):
        raise ConfigError(
            f"resnet18: weights must be None, 'random' or 'imagenet', found {weights!r}"
        )
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(num_classes=num_classes, weights=None)
    if stem == "cifar":
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        # The same initialisation torchvision gives every conv of the model.
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    _weights.set_weights_source(model, _weights.RANDOM)
    if weights == "imagenet":
        skip = (["conv1", "bn1"] if stem == "cifar" else []) + (
            ["fc"] if num_classes != 1000 else []
        )
        _weights.load_pretrained(model, "resnet18.imagenet", skip=skip)
    return model


MODELS.add("mnist_cnn", mnist_cnn, "Keras 'Simple MNIST convnet' of seed 001 (34,826 params)")
MODELS.add(
    "fast_mnist",
    fast_mnist,
    "MNIST net of Wong et al. 2020 fast adversarial training (166,406 params)",
)
MODELS.add("lenet5", lenet5, "LeNet-5, LeCun et al. 1998 (tanh, avg pooling; 61,706 params)")
MODELS.add("cifar_cnn", cifar_cnn, "fast CIFAR CNN: 3 blocks conv-BN-ReLU x2 (288,746 params)")
MODELS.add("fer_cnn", fer_cnn, "VGG-style FER2013 net: 4 blocks conv-BN-ReLU x2 (1,174,439 params)")
MODELS.add("resnet18", resnet18, "torchvision ResNet-18; stem imagenet|cifar, weights=imagenet")

__all__ = ["cifar_cnn", "fast_mnist", "fer_cnn", "lenet5", "mnist_cnn", "resnet18"]
