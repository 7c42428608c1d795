"""The Flowers-17 CNNs of seed 004: the report's parameter counts and layer counts, exactly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models import create_model
from advlab.models.flowers import ARCHITECTURES, flowers_cnn, minimum_size

# The report's tables 1 and 4: convolutions, pools, dense layers, padding, activation, params.
REPORT = {
    "baseline": (1, 1, 1, True, nn.ReLU, 8_390_673),
    "mk1": (4, 4, 1, True, nn.ReLU, 18_337_425),
    "mk2": (6, 3, 1, True, nn.ReLU, 33_998_257),
    "mk3": (9, 4, 1, True, nn.ReLU, 38_386_513),
    "mk4": (6, 3, 1, False, nn.LeakyReLU, 19_318_193),
    "mk5": (7, 4, 1, False, nn.Tanh, 11_285_777),
    "mk6": (6, 3, 1, True, nn.LeakyReLU, 34_598_417),
}


@pytest.mark.parametrize("arch", sorted(REPORT))
def test_the_report_tables(arch: str) -> None:
    convs, pools, dense, padding, act, params = REPORT[arch]
    with torch.device("meta"):  # counts without allocating 38 M weights
        model = create_model(f"flowers_{arch}")
    assert sum(p.numel() for p in model.parameters()) == params == ARCHITECTURES[arch].parameters
    conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(conv) == convs
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == pools
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == dense + 1  # + the output
    assert {c.padding for c in conv} == {(1, 1) if padding else (0, 0)}
    assert {c.kernel_size for c in conv} == {(3, 3)}
    acts = {type(m) for m in model.modules() if isinstance(m, nn.ReLU | nn.LeakyReLU | nn.Tanh)}
    assert acts == {act}
    if act is nn.LeakyReLU:
        assert {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)} == {0.3}


def test_the_baseline_forward_and_keras_initialisation() -> None:
    torch.manual_seed(0)
    model = flowers_cnn(arch="baseline")
    out = model(torch.rand(2, 3, 128, 128))
    assert out.shape == (2, 17)
    fc1 = model.fc1
    assert isinstance(fc1, nn.Linear) and fc1.in_features == 64 * 64 * 32
    bound = (6 / (fc1.in_features + fc1.out_features)) ** 0.5  # glorot uniform
    largest = float(fc1.weight.detach().abs().max())
    assert 0.9 * bound < largest <= bound
    assert float(fc1.bias.abs().max()) == 0.0


def test_smaller_inputs_and_the_valid_networks_limits() -> None:
    assert minimum_size("mk4") == 36 and minimum_size("mk5") == 66 and minimum_size("mk2") == 1
    with torch.device("meta"):
        small = flowers_cnn(arch="mk2", image_size=64)
    assert sum(p.numel() for p in small.parameters()) == 33_998_257 - 512 * 256 * (16 * 16 - 8 * 8)
    assert flowers_cnn(arch="mk5", image_size=66)(torch.rand(1, 3, 66, 66)).shape == (1, 17)
    with pytest.raises(
        ConfigError,
        match=r"^flowers_cnn: arch 'mk5' without padding shrinks a "
        r"64 x 64 input to nothing; use image_size >= 66",
    ):
        flowers_cnn(arch="mk5", image_size=64)
    with pytest.raises(ConfigError, match=r"^arch: expected one of \['baseline', 'mk1'"):
        flowers_cnn(arch="mk7")
