"""A sequential numpy network, its gradients, and minibatch SGD with per-epoch decay.

`Sequential` also exposes the gradient of the loss (or of one class score) with respect to its
input, the small duck-typed protocol the attack library drives numpy models through:

* ``predict_scores(x) -> scores`` (N, C)
* ``input_gradient(x, y) -> (loss, dx)`` - mean cross-entropy and its gradient
* ``score_gradient(x, c) -> dx`` - gradient of the sum of class-`c` scores
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from advlab.errors import ConfigError
from advlab.progress import progress
from advlab.scratch.layers import ACTIVATIONS, LOSSES, Affine, Array, Layer


@dataclass(frozen=True)
class BatchLoss:
    """What `Sequential.batch_loss` computed on a batch.

    Attributes:
        value: The loss, data plus regularisation.
        dx: Its gradient with respect to the input, shaped like it; None when not asked for.
        scores: The network's output on the batch (N, C).
    """

    value: float
    dx: Array | None
    scores: Array


class Sequential:
    """Layers applied in order, a loss on the last output, L2 regularisation on weights.

    Args:
        layers: The layers, first to last.
        loss: ``"softmax"`` (softmax + cross-entropy, integer labels) or ``"mse"``.
        reg: L2 strength; adds ``reg * sum(W**2)`` over every weight matrix (CS231n's
            convention: gradient ``2 * reg * W``), biases unregularised.
    """

    def __init__(self, layers: Sequence[Layer], loss: str = "softmax", reg: float = 0.0) -> None:
        if loss not in LOSSES:
            raise ConfigError(f"loss: expected one of {', '.join(LOSSES)}, found {loss!r}")
        self.layers = list(layers)
        self.loss_name = loss
        self.reg = reg

    # -- forward / backward ------------------------------------------------------------------

    def forward(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: Array) -> Array:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def backward_params(self, dout: Array) -> None:
        """`backward` without the gradient with respect to the input: fills every layer's
        `grads`, the first layer skipping that product (`Layer.backward_params`)."""
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        if self.layers:
            self.layers[0].backward_params(dout)

    def loss(self, x: Array, y: Array, *, input_grad: bool = True) -> tuple[float, Array | None]:
        """Loss (data + regularisation) on a batch; fills every layer's `grads`; returns dx
        (None when `input_grad` is False, which training uses to skip that product).
        `batch_loss` returns the same with the scores."""
        result = self.batch_loss(x, y, input_grad=input_grad)
        return result.value, result.dx

    def batch_loss(self, x: Array, y: Array, *, input_grad: bool = True) -> BatchLoss:
        """One forward and backward pass on a batch: the loss (data + regularisation), dx (None
        when `input_grad` is False: the first layer then skips that product) and the scores,
        for the caller's accuracy bookkeeping; fills every layer's `grads`."""
        scores = self.forward(x)  # (N, C)
        value, dscores = LOSSES[self.loss_name](scores, y)
        dx: Array | None = None
        if input_grad:
            dx = self.backward(dscores)
        else:
            self.backward_params(dscores)
        if self.reg:
            for layer in self.layers:
                if "W" in layer.params:
                    W = layer.params["W"]
                    value += self.reg * float((W * W).sum())
                    layer.grads["W"] = layer.grads["W"] + 2 * self.reg * W
        return BatchLoss(value, dx, scores)

    # -- the attack protocol ---------------------------------------------------------------

    def predict_scores(self, x: Array, batch_size: int = 1024) -> Array:
        return np.concatenate(
            [self.forward(x[s : s + batch_size]) for s in range(0, len(x), batch_size)]
        )

    def predict(self, x: Array, batch_size: int = 1024) -> Array:
        return self.predict_scores(x, batch_size).argmax(1)

    def input_gradient(self, x: Array, y: Array) -> tuple[float, Array]:
        """Mean data loss (no regularisation) on `x` and its gradient with respect to `x`."""
        scores = self.forward(x.astype(self.dtype, copy=False))
        value, dscores = LOSSES[self.loss_name](scores, y)
        return value, self.backward(dscores)

    def score_gradient(self, x: Array, c: int | Array) -> Array:
        """Gradient of the sum over the batch of the class-`c` scores with respect to `x`."""
        scores = self.forward(x.astype(self.dtype, copy=False))
        d = np.zeros_like(scores)
        d[np.arange(len(scores)), c] = 1
        return self.backward(d)

    # -- parameters ------------------------------------------------------------------------

    @property
    def dtype(self) -> np.dtype[Any]:
        for layer in self.layers:
            for value in layer.params.values():
                return value.dtype
        return np.dtype(np.float32)

    def astype(self, dtype: npt.DTypeLike) -> Sequential:
        for layer in self.layers:
            layer.astype(dtype)
        return self

    def parameters(self) -> list[tuple[Layer, str]]:
        return [(layer, name) for layer in self.layers for name in layer.params]

    def __repr__(self) -> str:
        return f"Sequential({self.layers}, loss={self.loss_name!r}, reg={self.reg})"


def mlp(
    sizes: Sequence[int],
    activation: str = "relu",
    *,
    weight_scale: float | None = None,
    reg: float = 0.0,
    seed: int = 0,
    dtype: npt.DTypeLike = np.float32,
) -> Sequential:
    """Fully connected softmax classifier: ``sizes = [D, H1, ..., C]`` (``[D, C]``: linear)."""
    if activation not in ACTIVATIONS:
        raise ConfigError(
            f"activation: expected one of {', '.join(ACTIVATIONS)}, found {activation!r}"
        )
    if len(sizes) < 2 or min(sizes) < 1:
        raise ConfigError(f"sizes: expected [inputs, hidden..., classes], found {list(sizes)}")
    rng = np.random.default_rng(seed)
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(Affine(n_in, n_out, weight_scale=weight_scale, rng=rng, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return Sequential(layers, "softmax", reg)


# ---------------------------------------------------------------------------------------------
# training


@dataclass
class SGDHistory:
    """Per-epoch record of `sgd`; `diverged` names the epoch whose loss became NaN or inf."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    diverged: int | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sgd(
    net: Sequential,
    x: Array,
    y: Array,
    *,
    lr: float,
    epochs: int,
    batch_size: int = 32,
    lr_decay: float = 1.0,
    seed: int = 0,
    val: tuple[Array, Array] | None = None,
    on_epoch: Callable[[int, SGDHistory], None] | None = None,
    desc: str = "sgd",
) -> SGDHistory:
    """Minibatch SGD: shuffled epochs, ``W -= lr * dW`` in place, ``lr *= lr_decay`` per epoch.

    Training accuracy and loss are those of the minibatches during the epoch. A loss that turns
    NaN or inf stops training: `diverged` records the epoch (0-based) and the history keeps the
    epochs before it, so that a report can say so instead of crashing or training on garbage.
    """
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ConfigError(
            f"sgd: expected epochs >= 0, batch_size >= 1, lr > 0; found "
            f"epochs={epochs}, batch_size={batch_size}, lr={lr}"
        )
    rng = np.random.default_rng(seed)
    hist = SGDHistory()
    x = x.astype(net.dtype, copy=False)
    start = time.perf_counter()
    params = net.parameters()
    for epoch in progress(range(epochs), total=epochs, desc=desc):
        order = rng.permutation(len(x))
        loss_sum, correct, finite = 0.0, 0, True
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for s in range(0, len(x), batch_size):
                idx = order[s : s + batch_size]
                xb, yb = x[idx], y[idx]
                step = net.batch_loss(xb, yb, input_grad=False)
                value = step.value
                if not math.isfinite(value):
                    finite = False
                    break
                loss_sum += value * len(idx)
                if net.loss_name == "softmax":
                    correct += int((step.scores.argmax(1) == yb).sum())
                for layer, name in params:
                    layer.params[name] -= lr * layer.grads[name]
        if not finite:
            hist.diverged = epoch
            break
        hist.train_loss.append(loss_sum / len(x))
        hist.train_acc.append(correct / len(x))
        hist.lr.append(lr)
        if val is not None:
            hist.val_acc.append(
                float((net.predict(val[0].astype(net.dtype, copy=False)) == val[1]).mean())
            )
        lr *= lr_decay
        if on_epoch is not None:
            on_epoch(epoch, hist)
    hist.seconds = time.perf_counter() - start
    return hist


def accuracy(net: Sequential, x: Array, y: Array) -> float:
    return float((net.predict(x.astype(net.dtype, copy=False)) == y).mean())
