"""Feature-extractor backbones of seed 004's transfer learning, with the report's table 7.

VGG16 and Inception-v3 come from torchvision. MobileNet (v1, width 1) and Xception are not in
torchvision; they are written here in the layout of the Keras applications the report used,
so that the parameter counts match Keras' to the unit: without top, VGG16 has 14,714,688,
MobileNet 3,206,976 and Xception 20,806,952 trainable parameters. torchvision's Inception-v3 has
21,785,568: Keras builds its batch norms with ``scale=False``, and without those 17,216 scale
weights it is the report's 21,768,352 (`keras_trainable` gives that count). "Depth" in the
report is Keras' layer count (activation, padding and batch-norm layers included);
`backbone_table` reports the number of weighted layers (convolutions, depthwise ones included)
instead, a count that does not depend on how a framework splits layers.

Pretrained weights go through `advlab.models.weights`: ``build_backbone(name,
weights="imagenet")`` loads the registered ``<name>.imagenet`` file, checksum verified, and
raises when it is missing rather than return random weights. VGG16 and Inception-v3 take
torchvision's published ImageNet files (``advlab weights import vgg16-397923af.pth``), their
classifiers left out. MobileNet v1 and Xception have no published PyTorch weights in these
layouts (Keras ships them as .h5, and no converter is written yet), so none is registered and
asking for them says so. A backbone built without weights is randomly initialised and says so
in its ``advlab_weights`` label: never present such a backbone as an ImageNet one.
`BackboneSpec.mean` and ``std`` are the input normalisation the pretrained weights expect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models import weights as _weights

if TYPE_CHECKING:
    from torchvision.models import Inception3


def _conv_bn(
    cin: int,
    cout: int,
    kernel: int,
    stride: int = 1,
    *,
    groups: int = 1,
    act: type[nn.Module] | None = nn.ReLU6,
) -> list[nn.Module]:
    pad = kernel // 2
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3),
    ]
    if act is not None:
        layers.append(act())
    return layers


MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *[(512, 1)] * 5,
                    (1024, 2), (1024, 1))  # fmt: skip
"""Keras MobileNet's 13 depthwise-separable blocks: (pointwise filters, depthwise stride)."""


def mobilenet_v1() -> nn.Sequential:
    """MobileNet v1 (width 1) without top, Keras' layout: a strided 3x3 convolution, then 13
    blocks of depthwise 3x3 + pointwise 1x1, each with batch norm and ReLU6, no biases.
    Maps (N, 3, S, S) to (N, 1024, S / 32, S / 32); 3,206,976 parameters.

    References:
        Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for Mobile
        Vision Applications".
    """
    layers = _conv_bn(3, 32, 3, 2)
    cin = 32
    for cout, stride in MOBILENET_BLOCKS:
        layers += _conv_bn(cin, cin, 3, stride, groups=cin)
        layers += _conv_bn(cin, cout, 1)
        cin = cout
    return nn.Sequential(*layers)


class _Separable(nn.Sequential):
    """Keras' SeparableConv2D without bias (depthwise 3x3, pointwise 1x1), then batch norm."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3),
        )


class _XceptionBlock(nn.Module):
    """Separable convolutions with a residual: entry/exit blocks end in a strided max pool and
    have a strided 1x1 shortcut; middle blocks keep the size and add the input."""

    def __init__(
        self, cin: int, widths: tuple[int, ...], *, pool: bool, first_relu: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for i, w in enumerate(widths):
            if i > 0 or first_relu:
                layers.append(nn.ReLU())
            layers.append(_Separable(c, w))
            c = w
        if pool:
            layers.append(nn.MaxPool2d(3, 2, padding=1))
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(cin, c, 1, 2, bias=False), nn.BatchNorm2d(c, eps=1e-3)
            )
        else:
            self.shortcut = nn.Identity()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def xception() -> nn.Sequential:
    """Xception without top, Keras' layout (entry flow, 8 middle blocks, exit flow). Maps
    (N, 3, S, S) to (N, 2048, S / 32, S / 32); 20,806,952 parameters.

    Keras pads its first two convolutions 'valid'; here they pad 1 so that every input side
    divisible by 32 gives a side / 32 map (the report's (4, 4, 2048) at 128 x 128); the count
    is the same.

    References:
        Chollet 2017, "Xception: Deep Learning with Depthwise Separable Convolutions".
    """
    layers = [*_conv_bn(3, 32, 3, 2, act=nn.ReLU), *_conv_bn(32, 64, 3, act=nn.ReLU)]
    layers.append(_XceptionBlock(64, (128, 128), pool=True, first_relu=False))
    layers.append(_XceptionBlock(128, (256, 256), pool=True))
    layers.append(_XceptionBlock(256, (728, 728), pool=True))
    layers += [_XceptionBlock(728, (728, 728, 728), pool=False) for _ in range(8)]
    layers.append(_XceptionBlock(728, (728, 1024), pool=True))
    layers += [_Separable(1024, 1536), nn.ReLU(), _Separable(1536, 2048), nn.ReLU()]
    return nn.Sequential(*layers)


def _vgg16() -> nn.Module:
    from torchvision.models import vgg16

    return vgg16(weights=None).features


def _inception_v3() -> nn.Module:
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, init_weights=True)
    net.fc = nn.Identity()
    net.avgpool = nn.Identity()
    net.dropout = nn.Identity()
    return _InceptionFeatures(net)


class _InceptionFeatures(nn.Module):
    """torchvision's Inception-v3 up to its last mixed block, returning the feature map."""

    def __init__(self, net: Inception3) -> None:
        super().__init__()
        net.transform_input = False  # inputs are normalised by the caller
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        for name in (
            "Conv2d_1a_3x3",
            "Conv2d_2a_3x3",
            "Conv2d_2b_3x3",
            "maxpool1",
            "Conv2d_3b_1x1",
            "Conv2d_4a_3x3",
            "maxpool2",
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
        ):
            x = getattr(n, name)(x)
        return x


@dataclass(frozen=True)
class BackboneSpec:
    """A feature extractor: its builder, the report's table-7 row (Keras, 128 x 128 input)."""

    build: Callable[[], nn.Module]
    source: str
    report_depth: int
    report_parameters: int
    report_shape: tuple[int, int, int]  # (H, W, C) at 128 x 128
    rename: Callable[[str], str | None] | None = None  # published names -> the backbone's
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


def _vgg_names(key: str) -> str | None:
    """torchvision's vgg16 file: keep ``features.*`` without the prefix, drop the classifier."""
    return key.removeprefix("features.") if key.startswith("features.") else None


def _inception_names(key: str) -> str | None:
    """torchvision's inception_v3 file: nest under ``net.``, drop the classifier and aux head."""
    return None if key.startswith(("fc.", "AuxLogits.")) else f"net.{key}"


# fmt: off
BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec(_vgg16, "torchvision vgg16().features", 19, 14_714_688, (4, 4, 512),
                          _vgg_names),
    # torchvision's Inception-v3 weights expect inputs scaled to [-1, 1] (its transform_input).
    "inception_v3": BackboneSpec(_inception_v3, "torchvision inception_v3, to Mixed_7c", 311,
                                 21_768_352, (2, 2, 2048), _inception_names, (0.5,) * 3,
                                 (0.5,) * 3),
    # Keras' MobileNet and Xception take inputs scaled to [-1, 1] too.
    "mobilenet": BackboneSpec(mobilenet_v1, "advlab, Keras MobileNet layout", 87, 3_206_976,
                              (4, 4, 1024), None, (0.5,) * 3, (0.5,) * 3),
    "xception": BackboneSpec(xception, "advlab, Keras Xception layout", 132, 20_806_952,
                             (4, 4, 2048), None, (0.5,) * 3, (0.5,) * 3),
}
# fmt: on


def build_backbone(name: str, *, weights: str | None = None) -> nn.Module:
    """The feature extractor `name` (a key of `BACKBONES`), randomly initialised, or with the
    registered pretrained weights ``<name>.<weights>`` (an unregistered name or a missing file
    raises; nothing is substituted)."""
    if name not in BACKBONES:
        raise ConfigError(f"backbone: expected one of {sorted(BACKBONES)}, found {name!r}")
    spec = BACKBONES[name]
    model = spec.build()
    _weights.set_weights_source(model, _weights.RANDOM)
    if weights is not None:
        key = f"{name}.{weights}"
        if key not in _weights.WEIGHTS:
            raise ConfigError(
                f"no pretrained weights {key!r} are registered: "
                + (
                    "Keras publishes them as .h5 files and advlab has no converter for them yet; "
                    if spec.rename is None
                    else ""
                )
                + f"known: {', '.join(sorted(_weights.WEIGHTS))}"
            )
        _weights.load_pretrained(model, key, rename=spec.rename)
    return model


def keras_trainable(model: nn.Module) -> int:
    """Parameters as Keras counts them trainable for these layouts: all of them, but the batch
    -norm scales of a network whose Keras original has ``scale=False`` (Inception-v3)."""
    total = sum(p.numel() for p in model.parameters())
    if isinstance(model, _InceptionFeatures):
        total -= sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    return total


def backbone_table(
    names: tuple[str, ...] = tuple(BACKBONES), image_size: int = 128
) -> list[dict[str, Any]]:
    """One row per backbone: weighted layers, parameters (torch and Keras' trainable count),
    feature-map shape (H, W, C) and tabular features at `image_size`, next to the report's.
    Built on the meta device: no weights are allocated, nothing is downloaded."""
    rows = []
    for name in names:
        spec = BACKBONES[name]
        with torch.device("meta"):
            model = build_backbone(name).eval()
            out = model(torch.empty(1, 3, image_size, image_size))
        weighted = sum(isinstance(m, nn.Conv2d | nn.Linear) for m in model.modules())
        c, h, w = out.shape[1:]
        rows.append(
            {
                "backbone": name,
                "source": spec.source,
                "weighted layers": weighted,
                "report depth (Keras layers)": spec.report_depth,
                "parameters": sum(p.numel() for p in model.parameters()),
                "Keras trainable": keras_trainable(model),
                "report parameters": spec.report_parameters,
                "feature map": (h, w, c),
                "report feature map": spec.report_shape,
                "tabular features": h * w * c,
            }
        )
    return rows


__all__ = ["BACKBONES", "BackboneSpec", "backbone_table", "build_backbone", "keras_trainable",
           "mobilenet_v1", "xception"]  # fmt: skip
