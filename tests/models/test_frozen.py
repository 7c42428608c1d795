"""freeze_for_inference: the frozen TorchScript copy computes the model's function, is cached
until the model changes, and refuses models that tracing gets wrong; OnePixel(frozen=True)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.attacks import OnePixel
from advlab.errors import AttackError, ConfigError
from advlab.models import ModelWrapper
from advlab.models.frozen import FrozenClassifier, freeze_for_inference


def _cnn(seed: int = 0) -> ModelWrapper:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    for m in net.modules():  # batch norm with statistics of its own, so folding changes weights
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return ModelWrapper(net, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


class Branchy(nn.Module):
    """Takes another path when the image is bright: tracing bakes in the example's branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.flatten(1)[:, :4]
        return z if bool(x.mean() > 0.5) else -z


def test_the_frozen_copy_computes_the_same_logits_for_any_batch_size() -> None:
    model = _cnn()
    x = torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    frozen = freeze_for_inference(model, x)
    assert isinstance(frozen, FrozenClassifier) and frozen.bounds == model.bounds
    assert not list(frozen.parameters())  # the weights are constants of the graph
    for batch in (x, torch.rand(3, 3, 12, 12), torch.rand(20, 3, 12, 12)):
        with torch.no_grad():
            expected = model.eval()(batch)
        torch.testing.assert_close(frozen(batch), expected, atol=1e-5, rtol=1e-4)


def test_the_model_keeps_its_mode_and_the_copy_is_cached_until_it_changes() -> None:
    model = _cnn().train()
    x = torch.rand(4, 3, 12, 12)
    first = freeze_for_inference(model, x)
    assert model.training and all(m.training for m in model.modules())
    assert freeze_for_inference(model, x) is first  # cached
    with torch.no_grad():
        model.net[0].weight.mul_(2.0)  # an in-place update: the copy is rebuilt
    second = freeze_for_inference(model, x)
    assert second is not first
    with torch.no_grad():
        expected = model.eval()(x)
        old = first(x)
    torch.testing.assert_close(second(x), expected, atol=1e-5, rtol=1e-4)
    assert float((old - expected).abs().max()) > 1e-2  # the old copy had the old weights


def test_models_tracing_gets_wrong_are_refused() -> None:
    dark = torch.full((2, 3, 4, 4), 0.2)
    with pytest.raises(AttackError, match=r"^model: its frozen TorchScript copy differs"):
        freeze_for_inference(ModelWrapper(Branchy()), dark)
    with pytest.raises(AttackError, match=r"^model: freezing needs a ModelWrapper-like"):
        freeze_for_inference(nn.Linear(3, 2), dark)


def test_one_pixel_frozen_finds_what_the_eager_search_finds() -> None:
    model = _cnn(2)
    x = torch.rand(6, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    kwargs = {"population": 16, "max_generations": 4, "seed": 0}
    eager = OnePixel(**kwargs).search(model, x, y, pixels=1)  # type: ignore[arg-type]
    frozen = OnePixel(frozen=True, **kwargs).search(model, x, y, pixels=1)  # type: ignore[arg-type]
    assert torch.equal(frozen.pixels, eager.pixels)
    assert torch.equal(frozen.found, eager.found) and torch.equal(frozen.queries, eager.queries)
    torch.testing.assert_close(frozen.probability, eager.probability)
    with pytest.raises(ConfigError, match=r"^frozen: expected True or False, found 'yes'"):
        OnePixel(frozen="yes")  # type: ignore[arg-type]
