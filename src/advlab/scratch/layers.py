"""Layers with hand-written backpropagation, in numpy, as the labs teach them (seeds 000, 003).

Each layer is a forward/backward pair: `forward(x)` caches what `backward` needs, and
`backward(dout)` returns the gradient with respect to the layer's input and stores the
gradients of its parameters in `grads` (same keys as `params`); `backward_params(dout)` stores
those only, for a first layer whose input gradient nobody needs. Layers compute in the dtype of
their input and parameters: training runs in float32, gradient checks in float64
(`Sequential.astype`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit

Array = npt.NDArray[Any]


class Layer:
    """Base class: no parameters, identity."""

    params: dict[str, Array]
    grads: dict[str, Array]

    def __init__(self) -> None:
        self.params, self.grads = {}, {}

    def forward(self, x: Array) -> Array:
        raise NotImplementedError

    def backward(self, dout: Array) -> Array:
        raise NotImplementedError

    def backward_params(self, dout: Array) -> None:
        """`backward` without the gradient with respect to the input: fills `grads` only.
        Layers where that gradient costs a product (`Affine`) skip it."""
        self.backward(dout)

    def astype(self, dtype: npt.DTypeLike) -> None:
        for name, value in self.params.items():
            self.params[name] = value.astype(dtype)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


class Affine(Layer):
    """y = x W + b, with x flattened to (N, D). W is (D, M), b is (M,).

    Args:
        weight_scale: Standard deviation of the Gaussian initial weights (CS231n's `std`);
            None uses He initialisation, sqrt(2 / D).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        weight_scale: float | None = None,
        rng: np.random.Generator | None = None,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        rng = rng or np.random.default_rng(0)
        scale = np.sqrt(2.0 / n_in) if weight_scale is None else weight_scale
        self.params = {
            "W": (scale * rng.standard_normal((n_in, n_out))).astype(dtype),
            "b": np.zeros(n_out, dtype=dtype),
        }

    def forward(self, x: Array) -> Array:
        self._shape = x.shape
        self._x = x.reshape(x.shape[0], -1)
        return self._x @ self.params["W"] + self.params["b"]

    def backward(self, dout: Array) -> Array:
        self.backward_params(dout)
        return (dout @ self.params["W"].T).reshape(self._shape)

    def backward_params(self, dout: Array) -> None:
        self.grads = {"W": self._x.T @ dout, "b": dout.sum(0)}


class ReLU(Layer):
    def forward(self, x: Array) -> Array:
        self._mask = x > 0
        return x * self._mask

    def backward(self, dout: Array) -> Array:
        return dout * self._mask


class Sigmoid(Layer):
    def forward(self, x: Array) -> Array:
        self._out = expit(x)  # numerically stable logistic function
        return self._out

    def backward(self, dout: Array) -> Array:
        out = self._out
        return dout * out * (1 - out)


class Tanh(Layer):
    def forward(self, x: Array) -> Array:
        self._out = np.tanh(x)
        return self._out

    def backward(self, dout: Array) -> Array:
        out = self._out
        return dout * (1 - out * out)


ACTIVATIONS: dict[str, type[Layer]] = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


# ---------------------------------------------------------------------------------------------
# losses: (value, gradient with respect to the scores), mean over the batch


def softmax(scores: Array) -> Array:
    """Row-wise softmax, stable (the row maximum is subtracted first)."""
    shifted = scores - scores.max(1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(1, keepdims=True)


def softmax_cross_entropy(scores: Array, y: Array) -> tuple[float, Array]:
    """Mean cross-entropy of softmax(scores) against integer labels, and d loss / d scores.

    Computed through log-sum-exp, so large scores neither overflow nor give log(0).
    """
    n = scores.shape[0]
    shifted = scores - scores.max(1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(1, keepdims=True))
    log_p = shifted - log_z
    rows = np.arange(n)
    loss = float(-log_p[rows, y].mean())
    d = np.exp(log_p)
    d[rows, y] -= 1
    d /= n
    return loss, d


def mse(pred: Array, target: Array) -> tuple[float, Array]:
    """Mean over the batch of the squared error summed over outputs, and its gradient."""
    diff = pred - target.reshape(pred.shape)
    n = pred.shape[0]
    return float((diff * diff).sum() / n), 2 * diff / n


LOSSES = {"softmax": softmax_cross_entropy, "mse": mse}
