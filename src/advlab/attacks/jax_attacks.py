"""FGSM and its iterated form written in JAX, as seed 002 asks, on a model from `to_jax`.

The same mathematics as `advlab.attacks.FGSM` / `BIM` (summed cross-entropy, sign step,
clip to the bounds), differentiated by `jax.grad` instead of torch's autograd, so the two
backends can be compared on one model. The step and the prediction are compiled once per
model (`jax.jit`), with epsilon as an argument, so a sweep over epsilons compiles nothing new.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from advlab.models.jax_model import Apply, import_jax


class JaxFGSM:
    """FGSM (`steps=1`) and seed 002's iterated FGSM (`steps=k`, eps/k each) in JAX.

    Args:
        apply: `apply(params, x) -> logits`, from `advlab.models.jax_model.to_jax`.
        params: Its parameters.
        bounds: Pixel range every step is clipped to.

    Returns:
        `attack(x, y, epsilon, steps=1)` returns the perturbed inputs, float32 numpy like `x`
        ((N, C, H, W) in the bounds); `predict(x)` the predicted classes (N,).

    References:
        Goodfellow, Shlens, Szegedy 2015, "Explaining and Harnessing Adversarial Examples";
        Kurakin, Goodfellow, Bengio 2017, "Adversarial Examples in the Physical World".
    """

    def __init__(
        self, apply: Apply, params: Any, *, bounds: tuple[float, float] = (0.0, 1.0)
    ) -> None:
        jax = import_jax()
        jnp = jax.numpy
        self.params = params
        low, high = bounds

        def loss(p: Any, xb: Any, yb: Any) -> Any:
            logp = jax.nn.log_softmax(apply(p, xb))
            return -jnp.take_along_axis(logp, yb[:, None], axis=1).sum()

        def step(p: Any, xb: Any, yb: Any, alpha: Any) -> Any:
            grad = jax.grad(loss, argnums=1)(p, xb, yb)
            return jnp.clip(xb + alpha * jnp.sign(grad), low, high)

        self._step = jax.jit(step)
        self._predict = jax.jit(lambda p, xb: apply(p, xb).argmax(axis=1))
        self._jnp = jnp

    def __call__(
        self, x: np.ndarray, y: np.ndarray, epsilon: float, *, steps: int = 1
    ) -> np.ndarray:
        out = self._jnp.asarray(x)
        yj = self._jnp.asarray(y)
        alpha = self._jnp.float32(epsilon / steps)
        for _ in range(steps):
            out = self._step(self.params, out, yj, alpha)
        return np.asarray(out)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._predict(self.params, self._jnp.asarray(x)))
