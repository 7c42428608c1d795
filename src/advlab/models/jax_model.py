"""A PyTorch layer stack as a pure JAX function with the same weights (seed 002 is in JAX).

`to_jax(model)` walks an `nn.Sequential` (nesting allowed), inside a `ModelWrapper` or not,
and returns `(apply, params)`: `apply(params, x)` maps NCHW pixels to logits with
`jax.lax` operations in the same layout, so JAX's autodiff gives the input gradient that
JAX attacks use. Supported layers: Conv2d (zero padding, groups 1), Linear, ReLU, Tanh,
Sigmoid, LeCun's tanh, Max/AvgPool2d without padding, Flatten, Dropout and Identity (eval
mode), and the wrapper's normalisation. JAX is an optional dependency (`pip install
'advlab[jax]'`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from torch import nn

from advlab.errors import ConfigError
from advlab.models.small import LeCunTanh

Apply = Callable[[Any, Any], Any]


def import_jax() -> Any:
    """The `jax` module, or ConfigError saying how to install it."""
    try:
        import jax
    except ImportError:
        raise ConfigError(
            "the JAX backend needs jax: pip install 'advlab[jax]' (or pip install jax)"
        ) from None
    return jax


def _leaves(net: nn.Module) -> Iterator[nn.Module]:
    for child in net.children():
        if isinstance(child, nn.Sequential):
            yield from _leaves(child)
        else:
            yield child


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _pool(
    lax: Any, jnp: Any, is_max: bool, window: tuple[int, ...], strides: tuple[int, ...]
) -> Callable[[dict[str, Any], Any], Any]:
    area = float(window[2] * window[3])

    def pool(p: dict[str, Any], x: Any) -> Any:
        if is_max:
            return lax.reduce_window(x, -jnp.inf, lax.max, window, strides, "VALID")
        return lax.reduce_window(x, 0.0, lax.add, window, strides, "VALID") / area

    return pool


def to_jax(model: nn.Module) -> tuple[Apply, list[dict[str, Any]]]:
    """`(apply, params)` computing `model`'s logits in JAX (float32, eval mode).

    Raises:
        ConfigError: jax is not installed, or the model holds a layer with no JAX match.
    """
    jax = import_jax()
    jnp, lax = jax.numpy, jax.lax
    mean = std = None
    net: Any = model
    if hasattr(model, "bounds") and hasattr(model, "inner"):
        net = model.inner
        wrapper_mean, wrapper_std = getattr(model, "mean", None), getattr(model, "std", None)
        if wrapper_mean is not None and wrapper_std is not None:
            mean = jnp.asarray(wrapper_mean.detach().cpu().numpy())
            std = jnp.asarray(wrapper_std.detach().cpu().numpy())
    if not isinstance(net, nn.Sequential):
        raise ConfigError(
            f"to_jax: expected an nn.Sequential layer stack, found {type(net).__name__}"
        )
    ops: list[Callable[[dict[str, Any], Any], Any]] = []
    params: list[dict[str, Any]] = []

    def arr(t: Any) -> Any:
        return jnp.asarray(t.detach().cpu().numpy().astype(np.float32))

    for m in _leaves(net):
        p: dict[str, Any] = {}
        if isinstance(m, nn.Conv2d):
            if m.groups != 1 or m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise ConfigError(f"to_jax: unsupported convolution {m!r}")
            p = {"w": arr(m.weight), "b": None if m.bias is None else arr(m.bias)}
            stride, dil, pad = _pair(m.stride), _pair(m.dilation), _pair(m.padding)

            def conv(
                p: dict[str, Any], x: Any, stride: Any = stride, dil: Any = dil, pad: Any = pad
            ) -> Any:
                y = lax.conv_general_dilated(
                    x,
                    p["w"],
                    window_strides=stride,
                    padding=[(pad[0], pad[0]), (pad[1], pad[1])],
                    rhs_dilation=dil,
                    dimension_numbers=("NCHW", "OIHW", "NCHW"),
                )
                return y if p["b"] is None else y + p["b"][None, :, None, None]

            ops.append(conv)
        elif isinstance(m, nn.Linear):
            p = {"w": arr(m.weight), "b": None if m.bias is None else arr(m.bias)}
            ops.append(lambda p, x: x @ p["w"].T + (0 if p["b"] is None else p["b"]))
        elif isinstance(m, nn.ReLU):
            ops.append(lambda p, x: jax.nn.relu(x))
        elif isinstance(m, nn.Tanh):
            ops.append(lambda p, x: jnp.tanh(x))
        elif isinstance(m, nn.Sigmoid):
            ops.append(lambda p, x: jax.nn.sigmoid(x))
        elif isinstance(m, LeCunTanh):
            ops.append(lambda p, x: 1.7159 * jnp.tanh(2.0 * x / 3.0) + 0.01 * x)
        elif isinstance(m, nn.MaxPool2d | nn.AvgPool2d):
            if _pair(m.padding) != (0, 0) or m.ceil_mode:
                raise ConfigError(f"to_jax: unsupported pooling {m!r}")
            k = _pair(m.kernel_size)
            s = _pair(m.stride if m.stride is not None else m.kernel_size)
            window, strides = (1, 1, *k), (1, 1, *s)
            ops.append(_pool(lax, jnp, isinstance(m, nn.MaxPool2d), window, strides))
        elif isinstance(m, nn.Flatten):
            ops.append(lambda p, x: x.reshape(x.shape[0], -1))  # CHW order, as torch
        elif isinstance(m, nn.Dropout | nn.Identity):
            continue
        else:
            raise ConfigError(f"to_jax: no JAX match for layer {m!r}")
        params.append(p)

    def apply(params: list[dict[str, Any]], x: Any) -> Any:  # (N, C, H, W) -> (N, K)
        if mean is not None:
            x = (x - mean) / std
        for op, p in zip(ops, params, strict=True):
            x = op(p, x)
        return x

    return apply, params
