"""Tests of advlab.models.wrapper: normalisation inside the model, bounds, predict."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.models import ModelWrapper
from advlab.models.wrapper import eval_mode

MEAN = (0.5, 0.4, 0.3)
STD = (0.2, 0.25, 0.5)


def _inner(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Flatten(),
        nn.Linear(4 * 5 * 5, 7),
    )


def _pixels(n: int = 9, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, 5, 5, generator=torch.Generator().manual_seed(seed))


def test_forward_normalises_inside_before_inner_model() -> None:
    inner = _inner()
    model = ModelWrapper(inner, mean=MEAN, std=STD)
    x = _pixels()
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    expected = inner((x - mean) / std)
    assert torch.equal(model(x), expected)
    # Normalisation really changes the logits, so the comparison above has teeth.
    assert not torch.allclose(model(x), inner(x))


def test_forward_without_normalisation_is_the_inner_model() -> None:
    inner = _inner()
    model = ModelWrapper(inner)
    x = _pixels()
    assert torch.equal(model(x), inner(x))
    assert model.mean is None and model.std is None


def test_buffers_shape_state_dict_and_dtype_moves() -> None:
    model = ModelWrapper(_inner(), mean=MEAN, std=STD)
    assert model.mean is not None and model.std is not None
    assert model.mean.shape == (1, 3, 1, 1) and model.std.shape == (1, 3, 1, 1)
    assert torch.equal(model.std.flatten(), torch.tensor(STD))
    state = model.state_dict()
    assert "mean" in state and "std" in state
    model = model.double()
    x = _pixels().double()
    assert model.mean is not None and model.mean.dtype == torch.float64
    assert model(x).dtype == torch.float64


def test_bounds_and_inner_properties() -> None:
    inner = _inner()
    assert ModelWrapper(inner).bounds == (0.0, 1.0)
    model = ModelWrapper(inner, bounds=(-1, 1))
    assert model.bounds == (-1.0, 1.0)
    assert isinstance(model.bounds[0], float)
    assert model.inner is inner


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"bounds": (1.0, 0.0)}, "bounds"),
        ({"bounds": (0.5, 0.5)}, "bounds"),
        ({"mean": MEAN}, "mean, std"),
        ({"std": STD}, "mean, std"),
        ({"mean": MEAN, "std": (0.2, 0.2)}, "mean, std"),
        ({"mean": MEAN, "std": (0.2, 0.0, 0.1)}, "std"),
    ],
)
def test_bad_constructor_params_raise_config_error(
    kwargs: dict[str, object], argument: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^{re.escape(argument)}: expected"):
        ModelWrapper(_inner(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_size", [1, 4, 256])
def test_predict_is_eval_mode_argmax_in_chunks(batch_size: int) -> None:
    model = ModelWrapper(_inner(dropout=0.5), mean=MEAN, std=STD)
    x = _pixels(n=10)
    model.eval()
    with torch.no_grad():
        expected = model(x).argmax(dim=1)
    model.train()
    labels = model.predict(x, batch_size=batch_size)
    assert labels.dtype == torch.int64 and labels.shape == (10,)
    assert torch.equal(labels, expected)
    assert not labels.requires_grad
    assert model.training and all(m.training for m in model.modules())


def test_predict_rejects_bad_batch_size() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        ModelWrapper(_inner()).predict(_pixels(), batch_size=0)


def test_eval_mode_restores_each_submodules_own_flag() -> None:
    model = ModelWrapper(_inner(dropout=0.5))
    model.train()
    model.inner[2].eval()  # a frozen dropout inside a training model
    before = [m.training for m in model.modules()]
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert [m.training for m in model.modules()] == before
