"""`to_jax`: the JAX copy of a layer stack computes the same logits and input gradients."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
from torch import nn

from advlab.attacks import BIM, FGSM
from advlab.attacks.jax_attacks import JaxFGSM
from advlab.errors import ConfigError
from advlab.models import ModelWrapper, create_model
from advlab.models.jax_model import to_jax
from advlab.models.small import LeCunTanh


def _every_layer() -> ModelWrapper:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, stride=1),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.Sigmoid()),
        nn.MaxPool2d(2, stride=1),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(6 * 1 * 1, 8),
        LeCunTanh(),
        nn.Identity(),
        nn.Linear(8, 5),
        nn.ReLU(),
    )
    return ModelWrapper(net, mean=[0.4, 0.6], std=[0.2, 0.3]).eval()


@pytest.mark.parametrize("build", [_every_layer, lambda: ModelWrapper(create_model("mnist_cnn"))])
def test_same_logits_and_input_gradient(build) -> None:  # type: ignore[no-untyped-def]
    model = build().eval()
    shape = (2, 8, 8) if model.inner[0].in_channels == 2 else (1, 28, 28)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(1))
    apply, params = to_jax(model)
    ours = np.asarray(apply(params, x.numpy()))
    np.testing.assert_allclose(ours, model(x).detach().numpy(), rtol=1e-5, atol=1e-5)
    xr = x.clone().requires_grad_(True)
    (g_torch,) = torch.autograd.grad(model(xr)[:, 1].sum(), xr)
    g_jax = jax.grad(lambda xb: apply(params, xb)[:, 1].sum())(x.numpy())
    np.testing.assert_allclose(np.asarray(g_jax), g_torch.numpy(), rtol=1e-4, atol=1e-6)


def test_jax_fgsm_and_iterated_equal_the_torch_attacks() -> None:
    torch.manual_seed(0)
    model = ModelWrapper(create_model("mnist_cnn"), mean=[0.13], std=[0.31]).eval()
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    y = torch.arange(16) % 10
    attack = JaxFGSM(*to_jax(model))
    for steps, torch_attack in ((1, FGSM()), (5, BIM(steps=5))):
        ours = attack(x.numpy(), y.numpy(), 0.1, steps=steps)
        theirs, _, _ = torch_attack(model, x, y, epsilons=0.1)
        # Equal up to float32 rounding of the gradient: a sign flips only where it is ~0.
        assert np.mean(np.abs(ours - theirs.numpy()) > 1e-5) < 0.01
        expected = model.predict(torch.from_numpy(np.array(ours)))
        np.testing.assert_array_equal(attack.predict(ours), expected.numpy())


def test_unsupported_layers_are_named() -> None:
    with pytest.raises(ConfigError, match=r"^to_jax: no JAX match for layer BatchNorm2d"):
        to_jax(nn.Sequential(nn.BatchNorm2d(3)))
    with pytest.raises(ConfigError, match=r"^to_jax: expected an nn.Sequential"):
        to_jax(ModelWrapper(nn.Conv2d(1, 1, 1)))
