"""The numpy-network adapter (gradients against a PyTorch twin and finite differences) and the
fooling-image ascent of seed 003 on a numpy net and on a torch model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from advlab.attacks import FGSM, FoolingImage, TargetedMisclassification, l2
from advlab.errors import ConfigError
from advlab.models import ModelWrapper, NumpyClassifier
from advlab.scratch.net import Sequential, accuracy, mlp, sgd

NumpyData = tuple[Sequential, NumpyClassifier, torch.Tensor, torch.Tensor]


@pytest.fixture(scope="module")
def numpy_digits() -> NumpyData:
    """A numpy 64-32-10 ReLU net trained on centred digits, its adapter, and 397 test images."""
    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32).reshape(-1, 64)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1400], order[1400:]
    mean = x[train].mean(0)
    net = mlp([64, 32, 10], "relu", seed=0)
    sgd(net, x[train] - mean, y[train], lr=0.05, epochs=30, batch_size=32, seed=0)
    assert accuracy(net, x[test] - mean, y[test]) >= 0.93
    model = NumpyClassifier(net, layout="nchw", mean=mean)
    xt = torch.from_numpy(x[test]).reshape(-1, 1, 8, 8)
    return net, model, xt, torch.from_numpy(y[test])


def _torch_twin(net: Sequential, mean: torch.Tensor) -> ModelWrapper:
    """The same network in PyTorch, weights copied (numpy W is (in, out))."""
    w1, b1 = net.layers[0].params["W"], net.layers[0].params["b"]
    w2, b2 = net.layers[2].params["W"], net.layers[2].params["b"]
    lin1, lin2 = nn.Linear(64, 32), nn.Linear(32, 10)
    with torch.no_grad():
        lin1.weight.copy_(torch.from_numpy(w1.T))
        lin1.bias.copy_(torch.from_numpy(b1))
        lin2.weight.copy_(torch.from_numpy(w2.T))
        lin2.bias.copy_(torch.from_numpy(b2))

    class Centre(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1) - mean

    return ModelWrapper(nn.Sequential(Centre(), lin1, nn.ReLU(), lin2)).eval()


def test_adapter_scores_and_gradients_equal_the_pytorch_twin(numpy_digits: NumpyData) -> None:
    net, model, x, _ = numpy_digits
    twin = _torch_twin(net, model.mean.reshape(-1))
    x = x[:50].clone().requires_grad_(True)
    ours = model(x)
    theirs = twin(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    weights = torch.randn(ours.shape, generator=torch.Generator().manual_seed(0))
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), x)
    torch.testing.assert_close(g_ours, g_theirs, rtol=1e-4, atol=1e-5)


def test_adapter_gradient_against_finite_differences(numpy_digits: NumpyData) -> None:
    net, model, x, _ = numpy_digits
    model64 = NumpyClassifier(
        net.astype(np.float64), layout="nchw", mean=model.mean.double().numpy()
    )
    try:
        xd = x[:3].double().requires_grad_(True)
        (grad,) = torch.autograd.grad(model64(xd)[:, 4].sum(), xd)
        h = 1e-6
        for idx in [(0, 0, 3, 4), (1, 0, 5, 2), (2, 0, 0, 0)]:
            up, down = xd.detach().clone(), xd.detach().clone()
            up[idx] += h
            down[idx] -= h
            fd = (model64(up)[:, 4].sum() - model64(down)[:, 4].sum()) / (2 * h)
            assert float(grad[idx]) == pytest.approx(float(fd), rel=1e-5, abs=1e-8)
    finally:
        net.astype(np.float32)


def test_fooling_image_on_the_numpy_net_stops_at_the_first_success(numpy_digits: NumpyData) -> None:
    net, model, x, y = numpy_digits
    keep = torch.from_numpy(net.predict(x.reshape(-1, 64).numpy() - model.mean.numpy())) == y
    x, y = x[keep][:40], y[keep][:40]
    target = (y + 1) % 10
    attack = FoolingImage(stepsize=0.05)
    found = attack.search(model, x, TargetedMisclassification(target))
    raw, success, steps = found.adversarials, found.success, found.steps
    assert bool(success.all())
    assert steps.dtype == torch.int64 and steps.shape == (len(x),)
    assert int(steps.min()) >= 1
    # Calling the attack gives the same images and success.
    raw_c, _, success_c = attack(model, x, TargetedMisclassification(target), epsilons=None)
    assert torch.equal(raw_c, raw) and torch.equal(success_c, success)
    # One step fewer is not yet fooled: the ascent stopped at its first success.
    shorter = FoolingImage(stepsize=0.05, max_steps=int(steps.max()) - 1)
    prev, _, _ = shorter(model, x, TargetedMisclassification(target), epsilons=None)
    last = steps == steps.max()
    with torch.no_grad():
        assert not bool((model(prev[last]).argmax(1) == target[last]).any())
    # Each step is 0.05 long, so the distance is at most steps * 0.05 (less where clipped).
    assert bool((l2(x, raw) <= steps.float() * 0.05 + 1e-5).all())
    # The same ascent on the PyTorch twin takes the same path.
    twin = _torch_twin(net, model.mean.reshape(-1))
    twin_found = FoolingImage(stepsize=0.05).search(twin, x, TargetedMisclassification(target))
    assert torch.equal(twin_found.steps, steps)
    torch.testing.assert_close(twin_found.adversarials, raw, rtol=0, atol=1e-4)


def test_search_returns_the_steps_and_the_attack_keeps_no_state(
    digits: tuple[ModelWrapper, torch.Tensor, torch.Tensor],
) -> None:
    model, x, y = digits
    x, target = x[:8], (y[:8] + 3) % 10
    attack = FoolingImage(stepsize=0.1, max_steps=30)
    before = dict(vars(attack))
    found = attack.search(model, x, TargetedMisclassification(target))
    raw, clipped, success = attack(model, x, TargetedMisclassification(target), epsilons=None)
    assert vars(attack) == before  # nothing of the calls is kept on the attack
    # The steps are the ascent's own count: one step fewer leaves each image short of its
    # target (an exact list would depend on the processor's rounding).
    assert found.steps.dtype == torch.int64 and bool((found.steps >= 1).all())
    for s in sorted(set(found.steps.tolist())):
        short = FoolingImage(stepsize=0.1, max_steps=s - 1).search(
            model, x, TargetedMisclassification(target)
        )
        assert not bool(short.success[found.steps == s].any())
    assert torch.equal(found.adversarials, raw) and torch.equal(clipped, raw)
    assert torch.equal(found.success, success) and bool(success.all())
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.steps = found.steps  # type: ignore[misc]


def test_any_attack_drives_the_numpy_net(numpy_digits: NumpyData) -> None:
    _, model, x, y = numpy_digits
    _, _, success = FGSM()(model, x, y, epsilons=[0.0, 0.2])
    assert success[0].float().mean().item() <= 0.07  # clean error
    assert success[1].float().mean().item() >= 0.8


def test_adapter_refuses_what_it_cannot_use() -> None:
    with pytest.raises(ConfigError, match=r"^net: expected a numpy network with forward"):
        NumpyClassifier(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^layout: expected 'nhwc' or 'nchw', found 'hwc'"):
        NumpyClassifier(mlp([4, 2]), layout="hwc")
