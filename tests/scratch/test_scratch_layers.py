"""Hand-written backprop against finite differences and against PyTorch autograd (float64)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from advlab.errors import ConfigError
from advlab.scratch.layers import (
    Affine,
    ReLU,
    Sigmoid,
    Tanh,
    mse,
    softmax,
    softmax_cross_entropy,
)
from advlab.scratch.net import Sequential, mlp, sgd


def numeric_grad(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Centred finite differences of scalar f with respect to array x (changed in place)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


@pytest.mark.parametrize("layer_cls", [ReLU, Sigmoid, Tanh])
def test_activation_backward_matches_numeric_and_autograd(layer_cls: type) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 7))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    dout = rng.normal(size=(4, 7))
    layer = layer_cls()
    layer.forward(x)
    dx = layer.backward(dout)
    num = numeric_grad(lambda: float((layer.forward(x) * dout).sum()), x)
    assert rel_error(dx, num) < 1e-5
    xt = torch.tensor(x, requires_grad=True)
    fn = {ReLU: torch.relu, Sigmoid: torch.sigmoid, Tanh: torch.tanh}[layer_cls]
    (fn(xt) * torch.tensor(dout)).sum().backward()
    assert rel_error(dx, xt.grad.numpy()) < 1e-12
    np.testing.assert_allclose(layer.forward(x), fn(torch.tensor(x)).numpy(), rtol=1e-12)


def test_affine_backward_matches_numeric_and_autograd() -> None:
    rng = np.random.default_rng(1)
    layer = Affine(12, 5, rng=rng, dtype=np.float64)
    x = rng.normal(size=(3, 3, 2, 2))  # flattened to (3, 12) inside
    dout = rng.normal(size=(3, 5))
    layer.forward(x)
    dx = layer.backward(dout)
    f = lambda: float((layer.forward(x) * dout).sum())  # noqa: E731
    assert rel_error(dx, numeric_grad(f, x)) < 1e-5
    assert rel_error(layer.grads["W"], numeric_grad(f, layer.params["W"])) < 1e-5
    assert rel_error(layer.grads["b"], numeric_grad(f, layer.params["b"])) < 1e-5
    xt = torch.tensor(x, requires_grad=True)
    W = torch.tensor(layer.params["W"], requires_grad=True)
    b = torch.tensor(layer.params["b"], requires_grad=True)
    (((xt.reshape(3, -1) @ W) + b) * torch.tensor(dout)).sum().backward()
    for ours, theirs in [(dx, xt.grad), (layer.grads["W"], W.grad), (layer.grads["b"], b.grad)]:
        assert rel_error(ours, theirs.numpy()) < 1e-12


def test_softmax_cross_entropy_and_mse() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(6, 4)) * 3
    y = rng.integers(0, 4, 6)
    loss, d = softmax_cross_entropy(scores, y)
    st = torch.tensor(scores, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(st, torch.tensor(y))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    assert rel_error(d, st.grad.numpy()) < 1e-12
    # stable for huge scores: no overflow, no log(0)
    big, _ = softmax_cross_entropy(np.array([[1000.0, 0.0], [0.0, -1000.0]]), np.array([1, 1]))
    assert big == pytest.approx(1000.0 / 2 + 1000.0 / 2)
    np.testing.assert_allclose(softmax(np.array([[1e4, 1e4]])), [[0.5, 0.5]])
    pred, target = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    value, dm = mse(pred, target)
    pt = torch.tensor(pred, requires_grad=True)
    ref = ((pt - torch.tensor(target)) ** 2).sum() / 5
    ref.backward()
    assert value == pytest.approx(ref.item()) and rel_error(dm, pt.grad.numpy()) < 1e-12


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_whole_net_gradients_match_autograd(activation: str) -> None:
    rng = np.random.default_rng(3)
    net = mlp([10, 8, 6, 4], activation, reg=0.05, seed=1, dtype=np.float64)
    x, y = rng.normal(size=(5, 10)), rng.integers(0, 4, 5)
    loss, dx = net.loss(x, y)
    xt = torch.tensor(x, requires_grad=True)
    weights = [torch.tensor(layer.params[n], requires_grad=True) for layer, n in net.parameters()]
    act = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[activation]
    h = xt
    for i in range(0, len(weights), 2):
        h = h @ weights[i] + weights[i + 1]
        if i < len(weights) - 2:
            h = act(h)
    ref = torch.nn.functional.cross_entropy(h, torch.tensor(y))
    ref = ref + 0.05 * sum((w * w).sum() for w in weights[::2])
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    assert rel_error(dx, xt.grad.numpy()) < 1e-5
    for (layer, name), w in zip(net.parameters(), weights, strict=True):
        assert rel_error(layer.grads[name], w.grad.numpy()) < 1e-5, name
    # numeric check of the whole net on one weight matrix
    W = net.layers[2].params["W"]
    num = numeric_grad(lambda: net.loss(x, y)[0], W)
    net.loss(x, y)
    assert rel_error(net.layers[2].grads["W"], num) < 1e-6


def test_batch_loss_returns_the_scores_and_the_net_keeps_no_state() -> None:
    rng = np.random.default_rng(5)
    net = mlp([10, 8, 4], "relu", reg=0.01, seed=3, dtype=np.float64)
    x, y = rng.normal(size=(6, 10)), rng.integers(0, 4, 6)
    before = dict(vars(net))
    full = net.batch_loss(x, y)
    grads = [layer.grads[name].copy() for layer, name in net.parameters()]
    assert full.value == net.loss(x, y)[0]
    np.testing.assert_array_equal(full.dx, net.loss(x, y)[1])
    # The scores are the network's output on the batch: what `last_scores` used to hold.
    np.testing.assert_array_equal(full.scores, net.forward(x))
    assert full.scores.shape == (6, 4)
    # Without the input gradient: no dx, the same loss, scores and parameter gradients.
    cheap = net.batch_loss(x, y, input_grad=False)
    assert cheap.dx is None and cheap.value == full.value
    np.testing.assert_array_equal(cheap.scores, full.scores)
    for (layer, name), g in zip(net.parameters(), grads, strict=True):
        np.testing.assert_array_equal(layer.grads[name], g)
    assert net.loss(x, y, input_grad=False)[1] is None
    # sgd counts correct answers from the scores of each batch: one batch, the initial net's.
    initial = float((net.forward(x).argmax(1) == y).mean())
    hist = sgd(net, x, y, lr=0.1, epochs=2, batch_size=len(x))
    assert hist.train_acc[0] == initial
    # Nothing of the calls is kept on the network, and no flag on its first layer.
    assert vars(net).keys() == before.keys()
    assert all(vars(net)[k] is v for k, v in before.items())
    assert not any(hasattr(layer, "skip_input_grad") for layer in net.layers)


def test_backward_params_fills_the_grads_of_backward() -> None:
    rng = np.random.default_rng(6)
    for layer in (Affine(5, 3, rng=rng, dtype=np.float64), ReLU()):
        x, dout = rng.normal(size=(4, 5)), rng.normal(size=(4, 3 if layer.params else 5))
        layer.forward(x)
        layer.backward(dout)
        expected = {k: v.copy() for k, v in layer.grads.items()}
        layer.grads = {}
        layer.forward(x)
        assert layer.backward_params(dout) is None
        assert layer.grads.keys() == expected.keys()
        for k, v in expected.items():
            np.testing.assert_array_equal(layer.grads[k], v)


def test_input_and_score_gradients() -> None:
    rng = np.random.default_rng(4)
    net = mlp([6, 5, 3], "relu", seed=2, dtype=np.float64)
    x, y = rng.normal(size=(2, 6)), np.array([0, 2])
    _, dx = net.input_gradient(x, y)
    num = numeric_grad(lambda: net.input_gradient(x, y)[0], x)
    assert rel_error(dx, num) < 1e-6
    ds = net.score_gradient(x, 1)
    num = numeric_grad(lambda: float(net.predict_scores(x)[:, 1].sum()), x)
    assert rel_error(ds, num) < 1e-6


def test_sgd_learns_digits_and_detects_divergence() -> None:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    net = mlp([64, 32, 10], "sigmoid", weight_scale=0.1, seed=0)
    hist = sgd(
        net,
        X[:1400],
        y[:1400],
        lr=0.5,
        epochs=15,
        batch_size=32,
        lr_decay=0.95,
        val=(X[1400:], y[1400:]),
    )
    assert hist.diverged is None and len(hist.val_acc) == 15
    assert hist.val_acc[-1] > 0.85 and hist.train_loss[-1] < hist.train_loss[0]
    assert net.dtype == np.float32 and hist.lr[1] == pytest.approx(0.5 * 0.95)
    wild = mlp([64, 32, 10], "relu", weight_scale=1.0, seed=0)
    bad = sgd(wild, X * 100, y, lr=1e30, epochs=5, batch_size=32)  # float32 overflows
    assert bad.diverged is not None and len(bad.train_loss) == bad.diverged


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match="activation"):
        mlp([4, 3], "swish")
    with pytest.raises(ConfigError, match="loss"):
        Sequential([], loss="hinge")
    with pytest.raises(ConfigError, match="batch_size"):
        sgd(mlp([4, 3]), np.ones((2, 4)), np.zeros(2, int), lr=0.1, epochs=1, batch_size=0)
