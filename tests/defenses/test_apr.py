"""APR: each part can be switched off; fine-tuning leaves the base model as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advlab.defenses import (
    APRConfig,
    DefenseObjective,
    OnePixelExamples,
    apr_model,
    apr_objective,
    attention_layer,
    fine_tune,
)
from advlab.errors import ConfigError
from advlab.models import ModelWrapper
from advlab.train import TrainConfig


def _base() -> ModelWrapper:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)
    )
    return ModelWrapper(net, mean=[0.5] * 3, std=[0.25] * 3).eval()


def test_parts_switch_off_one_by_one() -> None:
    assert apr_objective(
        APRConfig(attention=False, adversarial=False, regularisation=False)
    ) == DefenseObjective(adversarial_fraction=0.25, gradient_top_k=4)
    full = apr_objective(APRConfig(pixels=3, population=8, generations=2))
    assert full.attack == OnePixelExamples(3, 8, 2)
    assert full.gradient_weight == 0.05 and full.attention_weight == 0.01
    no_attention = apr_objective(APRConfig(attention=False))
    assert no_attention.attention_weight == 0.0 and no_attention.gradient_weight == 0.05
    assert apr_objective(APRConfig(regularisation=False)).gradient_weight == 0.0
    assert apr_objective(APRConfig(adversarial=False)).attack is None
    assert attention_layer(apr_model(_base(), APRConfig())) is not None
    assert attention_layer(apr_model(_base(), APRConfig(attention=False))) is None
    assert APRConfig(adversarial=False).parts() == "attention + regularisation"
    with pytest.raises(ConfigError, match="attention"):
        APRConfig(attention="yes")  # type: ignore[arg-type]


def test_fine_tune_trains_a_copy() -> None:
    base = _base()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    x = torch.rand(48, 3, 8, 8)
    y = base.predict(x)
    cfg = APRConfig(population=8, generations=1, adversarial_fraction=0.5)
    model, history = fine_tune(
        base, (x, y), cfg, TrainConfig(epochs=1, batch_size=16, lr=0.05), progress=False
    )
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items())
    assert len(history.train_loss) == 1 and history.train_loss[0] > 0
    layer = attention_layer(model)
    assert layer is not None and not model.training
    pairs = zip(model.net[1].parameters(), base.net.parameters(), strict=True)
    assert all(not torch.equal(a, b) for a, b in pairs)
