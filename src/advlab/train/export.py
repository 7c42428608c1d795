"""Export stored models to other formats (pt, ONNX, Keras H5) and read Keras H5 files back.

Formats written by `export_model`:

``pt``
    A copy of the advlab checkpoint (same layout as the model store: state dict, model name and
    config, wrapper normalisation, training config, metrics, weights sha256) with an ``export``
    record added; `advlab.train.store.load_model` reads it. It needs advlab to be rebuilt; for a
    file that runs without advlab, use ``onnx``.
``onnx``
    ``torch.onnx.export`` (the torch.export-based exporter), opset `ONNX_OPSET`, one
    self-contained file. Input ``pixels``: (N, C, H, W) float32 in [0, 1], N dynamic;
    output ``logits``: (N, num_classes). The wrapper's normalisation is part of the graph. The
    model's metadata property ``advlab`` holds the model name, config and normalisation as JSON.
``h5``
    The Keras legacy H5 layout, written by Keras 3 (``model.save("x.h5")``) and opened with
    ``keras.models.load_model(path)`` (tested under Keras 3's torch backend). It is the equivalent
    ``keras.Sequential``: input (N, H, W, C) float32 in [0, 1] (channels last); a
    ``Normalization`` layer holding the wrapper's mean and variance (std**2); conv kernels
    OIHW -> HWIO; dense kernels transposed, the first dense layer after a ``Flatten`` with its
    input rows permuted from PyTorch's (C, H, W) flatten order to Keras' (H, W, C); BatchNorm with
    the same epsilon and momentum ``1 - torch momentum``; Dropout kept; conv padding as ``same``,
    ``valid`` or a ``ZeroPadding2D`` before the conv; LeCun's scaled tanh as a small nested
    Keras model of built-in layers, so no custom object is needed to load the file. Only
    architectures that are one stack of layers export (``mlp``, ``small_cnn``, ``mnist_cnn``,
    ``lenet5``, ``cifar_cnn``); ``resnet18`` (skip connections) raises `ConfigError`. The root
    attribute ``advlab`` of the file holds the model name, config and input shape as JSON.
    Before the file is written, the Keras model's predictions are compared with PyTorch's.

`import_h5` reads such a file back into an advlab `ModelWrapper` with h5py alone (no Keras):
it rebuilds the advlab model, checks that the file's layer stack is the one that model exports
to, and converts every weight back. It also reads Keras ``Sequential`` files that advlab did not
write (for example the Keras "Simple MNIST convnet" trained in Keras, with its activations fused
into the conv and dense layers and a final softmax, which is left out: advlab models return
logits), given the advlab model name.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advlab.errors import ConfigError, RunError
from advlab.fileio import atomic_path
from advlab.models import ModelWrapper, create_model, eval_mode
from advlab.models.small import LeCunTanh
from advlab.train.checkpoint import load_checkpoint, save_checkpoint
from advlab.train.store import input_config, load_model
from advlab.validation import check_in

log = logging.getLogger(__name__)

FORMATS = ("pt", "onnx", "h5")
ONNX_OPSET = 18
H5_SUFFIXES = (".h5", ".hdf5")
# Why a registered architecture cannot be a Keras Sequential, for the error message.
_NOT_A_STACK = {"resnet18": "skip connections"}
_LECUN_PREFIX = "lecun_tanh"
# Largest |keras - torch| accepted when exporting, relative to 1 + max |logit|.
_KERAS_TOLERANCE = 1e-4


@dataclass
class _Layer:
    """One Keras layer that a PyTorch module (or part of one) becomes.

    ``signature`` is the Keras class name with the settings that define the computation; it is
    what `import_h5` compares with a file. ``module`` holds the weights, if any.
    """

    name: str
    class_name: str
    config: dict[str, Any]
    module: nn.Module | None = None
    shape: tuple[int, ...] = ()  # the module's input, PyTorch layout without the batch
    perm: np.ndarray | None = None  # (D,) torch flat index of each Keras dense input row

    @property
    def signature(self) -> str:
        keys = _STRUCTURE.get(self.class_name, ())
        args = ", ".join(f"{k}={_tuples(self.config.get(k))}" for k in keys)
        return f"{self.class_name}({args})"


# The config keys that define a layer's computation (the rest are hyperparameters taken as
# they are: BatchNorm epsilon/momentum, Dropout rate).
_STRUCTURE: dict[str, tuple[str, ...]] = {
    "Conv2D": ("filters", "kernel_size", "strides", "padding", "dilation_rate", "use_bias"),
    "Dense": ("units", "use_bias"),
    "MaxPooling2D": ("pool_size", "strides", "padding"),
    "AveragePooling2D": ("pool_size", "strides", "padding"),
    "ZeroPadding2D": ("padding",),
    "Activation": ("activation",),
    "BatchNormalization": ("center", "scale"),
    "GlobalAveragePooling2D": ("keepdims",),
    "GlobalMaxPooling2D": ("keepdims",),
}


def _tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


# ------------------------------------------------------------------------ PyTorch -> layers


def _unsupported(model_name: str, why: str) -> ConfigError:
    return ConfigError(f"Keras export does not support {model_name} ({why}); use onnx or pt")


def _leaves(net: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in net.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, f"{full}_")
        else:
            yield full, child


def _input_shapes(net: nn.Module, shape: tuple[int, ...]) -> dict[nn.Module, tuple[int, ...]]:
    """The input shape (without batch) of every leaf module on one forward pass."""
    seen: dict[nn.Module, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen.setdefault(module, tuple(args[0].shape[1:]))

    handles = [module.register_forward_pre_hook(record) for _, module in _leaves(net)]
    try:
        with eval_mode(net), torch.no_grad():
            net(torch.zeros(1, *shape))
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _layer_name(name: str, module: nn.Module) -> str:
    return name if name[:1].isalpha() else f"{type(module).__name__.lower()}_{name}"


def _conv_layers(name: str, conv: nn.Conv2d, model_name: str) -> list[_Layer]:
    if conv.groups != 1 or conv.padding_mode != "zeros":
        raise _unsupported(model_name, f"{name}: grouped or non-zero-padded convolution")
    kernel, stride, dilation = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
    layers = []
    if isinstance(conv.padding, str):
        padding = conv.padding
    else:
        pad = _pair(conv.padding)
        same = [2 * p == d * (k - 1) for p, k, d in zip(pad, kernel, dilation, strict=True)]
        if pad == (0, 0):
            padding = "valid"
        elif stride == (1, 1) and all(same):
            padding = "same"
        else:
            padding = "valid"
            pad_cfg = ((pad[0], pad[0]), (pad[1], pad[1]))
            layers.append(_Layer(f"{name}_pad", "ZeroPadding2D", {"padding": pad_cfg}))
    config = {
        "filters": conv.out_channels,
        "kernel_size": kernel,
        "strides": stride,
        "padding": padding,
        "dilation_rate": dilation,
        "use_bias": conv.bias is not None,
    }
    layers.append(_Layer(name, "Conv2D", config, conv))
    return layers


def _pool_layer(name: str, pool: nn.MaxPool2d | nn.AvgPool2d, model_name: str) -> _Layer:
    if getattr(pool, "ceil_mode", False) or _pair(pool.padding) != (0, 0):
        raise _unsupported(model_name, f"{name}: pooling with padding or ceil_mode")
    if isinstance(pool, nn.MaxPool2d) and _pair(pool.dilation) != (1, 1):
        raise _unsupported(model_name, f"{name}: dilated pooling")
    if isinstance(pool, nn.AvgPool2d) and pool.divisor_override is not None:
        raise _unsupported(model_name, f"{name}: average pooling with divisor_override")
    class_name = "MaxPooling2D" if isinstance(pool, nn.MaxPool2d) else "AveragePooling2D"
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    config = {"pool_size": _pair(pool.kernel_size), "strides": _pair(stride), "padding": "valid"}
    return _Layer(name, class_name, config)


_ACTIVATIONS: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    LeCunTanh: "lecun",
}


def keras_layers(net: nn.Module, shape: Sequence[int], model_name: str) -> list[_Layer]:
    """The Keras layers (without input and normalisation) equivalent to `net`.

    Args:
        net: The classifier inside the wrapper; must be an `nn.Sequential` (nesting allowed).
        shape: One input's shape in PyTorch layout, (C, H, W) or (D,).
        model_name: For error messages.

    Raises:
        ConfigError: `net` is not one stack of layers, or holds a module without a Keras match.
    """
    if not isinstance(net, nn.Sequential):
        why = _NOT_A_STACK.get(model_name, f"{type(net).__name__} is not a plain layer stack")
        raise _unsupported(model_name, why)
    shapes = _input_shapes(net, tuple(shape))
    layers: list[_Layer] = []
    perm: np.ndarray | None = None  # Flatten order fix still owed to the next dense layer
    for torch_name, module in _leaves(net):
        name = _layer_name(torch_name, module)
        if isinstance(module, nn.Conv2d):
            layers += _conv_layers(name, module, model_name)
        elif isinstance(module, nn.Linear):
            config: dict[str, Any] = {
                "units": module.out_features,
                "use_bias": module.bias is not None,
            }
            layers.append(_Layer(name, "Dense", config, module, perm=perm))
            perm = None
        elif isinstance(module, nn.BatchNorm2d):
            if not module.track_running_stats or module.running_mean is None:
                raise _unsupported(model_name, f"{torch_name}: BatchNorm without running stats")
            momentum = 0.1 if module.momentum is None else module.momentum
            config = {"epsilon": module.eps, "momentum": 1.0 - momentum,
                      "center": module.affine, "scale": module.affine}  # fmt: skip
            layers.append(_Layer(name, "BatchNormalization", config, module))
        elif type(module) in _ACTIVATIONS:
            act = {"activation": _ACTIVATIONS[type(module)]}
            layers.append(_Layer(name, "Activation", act, module, shapes.get(module, ())))
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            layers.append(_pool_layer(name, module, model_name))
        elif isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
            if _pair(module.output_size) != (1, 1):  # type: ignore[arg-type]
                raise _unsupported(model_name, f"{torch_name}: adaptive pooling to more than 1x1")
            if isinstance(module, nn.AdaptiveMaxPool2d):
                layers.append(_Layer(name, "GlobalMaxPooling2D", {"keepdims": True}))
            else:
                layers.append(_Layer(name, "GlobalAveragePooling2D", {"keepdims": True}))
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise _unsupported(model_name, f"{torch_name}: Flatten of other dimensions")
            in_shape = shapes.get(module, ())
            if len(in_shape) == 3:  # (C, H, W): Keras flattens (H, W, C)
                c, h, w = in_shape
                perm = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)
            layers.append(_Layer(name, "Flatten", {}))
        elif isinstance(module, nn.Dropout):
            layers.append(_Layer(name, "Dropout", {"rate": module.p}, module))
        elif isinstance(module, nn.Identity):
            continue
        else:
            raise _unsupported(model_name, f"{torch_name}: no Keras layer for {module!r}")
    return layers


def _to_keras_weights(layer: _Layer) -> list[np.ndarray]:
    """The module's parameters in Keras order and layout (float32)."""
    m = layer.module
    if isinstance(m, nn.Conv2d):
        kernel = _np(m.weight).transpose(2, 3, 1, 0)  # (O, I, kh, kw) -> (kh, kw, I, O)
        tensors: list[torch.Tensor | None] = [m.bias]
    elif isinstance(m, nn.Linear):
        kernel = _np(m.weight).T  # (out, in) -> (in, out), rows in torch's flatten order
        if layer.perm is not None:
            kernel = kernel[layer.perm]  # rows in Keras' (H, W, C) order
        tensors = [m.bias]
    elif isinstance(m, nn.BatchNorm2d):
        return [_np(t) for t in (m.weight, m.bias, m.running_mean, m.running_var) if t is not None]
    else:
        return []
    return [np.ascontiguousarray(kernel)] + [_np(t) for t in tensors if t is not None]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _from_keras_weights(layer: _Layer, arrays: list[np.ndarray], where: str) -> None:
    """Copy Keras-layout `arrays` into ``layer.module`` (the inverse of `_to_keras_weights`)."""
    m = layer.module
    expected_ndim = {nn.Conv2d: 4, nn.Linear: 2}.get(type(m), 1)
    if not arrays or arrays[0].ndim != expected_ndim:
        found = arrays[0].shape if arrays else "no arrays"
        raise RunError(
            f"{where}: layer {layer.name!r}: expected a {expected_ndim}-d first "
            f"weight, found {found}"
        )
    if layer.perm is not None and arrays[0].shape[0] != len(layer.perm):
        raise RunError(
            f"{where}: layer {layer.name!r}: expected {len(layer.perm)} kernel rows, "
            f"found {arrays[0].shape[0]}"
        )
    if isinstance(m, nn.Conv2d):
        tensors = [arrays[0].transpose(3, 2, 0, 1), *arrays[1:]]  # (kh, kw, I, O) -> (O, I, kh, kw)
        targets = [m.weight, m.bias]
    elif isinstance(m, nn.Linear):
        kernel = arrays[0]
        if layer.perm is not None:
            kernel = kernel[np.argsort(layer.perm)]
        tensors = [kernel.T, *arrays[1:]]
        targets = [m.weight, m.bias]
    elif isinstance(m, nn.BatchNorm2d):
        tensors = list(arrays)
        targets = [m.weight, m.bias] if m.affine else []
        targets += [m.running_mean, m.running_var]
    else:
        return
    present = [t for t in targets if t is not None]
    if len(tensors) != len(present):
        raise RunError(
            f"{where}: layer {layer.name!r} holds {len(tensors)} weight arrays, "
            f"expected {len(present)}"
        )
    with torch.no_grad():
        for target, value in zip(present, tensors, strict=True):
            if tuple(value.shape) != tuple(target.shape):
                raise RunError(
                    f"{where}: layer {layer.name!r} has a weight of shape {tuple(value.shape)} "
                    f"(converted), expected {tuple(target.shape)}"
                )
            target.copy_(torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))


# ---------------------------------------------------------------------------- export_model


def default_export_path(checkpoint: Path, format: str) -> Path:
    """Where `format` goes by default: beside the checkpoint (``model.h5``, ``model.export.pt``)."""
    check_in("format", format, FORMATS)
    checkpoint = Path(checkpoint)
    suffix = ".export.pt" if format == "pt" else f".{format}"
    return checkpoint.with_name(checkpoint.stem + suffix)


def export_model(checkpoint: Path, out: Path, *, format: str) -> Path:
    """Export the stored model at `checkpoint` to `out` in `format`; returns the written path.

    Args:
        checkpoint: An advlab model checkpoint (``model.pt`` of the model store).
        out: The file to write, or an existing folder to write ``<checkpoint folder>.<format>``
            into. For ``h5`` the name must end in ``.h5`` or ``.hdf5``.
        format: ``pt``, ``onnx`` or ``h5`` (see the module docstring for each layout).

    Returns:
        The path written. The write is atomic: on any error no file is left at `out`.

    Raises:
        ConfigError: Unknown format, an ``h5`` name without an H5 suffix, an architecture Keras
            cannot represent, or the package a format needs (keras, onnxscript) is missing.
        RunError: The checkpoint is missing or corrupt (from `advlab.train.store.load_model`).
    """
    check_in("format", format, FORMATS)
    checkpoint, out = Path(checkpoint), Path(out)
    if out.is_dir():
        out = out / f"{checkpoint.resolve().parent.name}.{format}"
    if format == "h5" and out.suffix.lower() not in H5_SUFFIXES:
        raise ConfigError(
            f"out: expected a file name ending in .h5 or .hdf5 for format h5, found {str(out)!r}"
        )
    if out.resolve() == checkpoint.resolve():
        raise ConfigError(f"out: {out} is the checkpoint itself; choose another file")
    model = load_model(checkpoint)  # RunError for a missing or corrupt checkpoint
    state = load_checkpoint(checkpoint)
    writers: dict[str, Callable[[ModelWrapper, dict[str, Any], Path], None]] = {
        "pt": _write_pt,
        "onnx": _write_onnx,
        "h5": _write_h5,
    }
    with atomic_path(out) as tmp:
        writers[format](model, state, tmp)
    log.info("exported %s to %s (%s)", checkpoint, out, format)
    return out


def _describe(state: dict[str, Any]) -> dict[str, Any]:
    """What another program needs to know about the exported model."""
    return {
        "model": state["model"]["name"],
        "config": state["model"]["config"],
        "dataset": state.get("dataset"),
        "input": state["input"],
        "wrapper": state["wrapper"],
        "weights_sha256": state.get("weights_sha256"),
    }


def _write_pt(model: ModelWrapper, state: dict[str, Any], tmp: Path) -> None:
    exported = dict(state)
    exported["export"] = {
        "format": "pt",
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
    }
    save_checkpoint(tmp, exported)


def _write_onnx(model: ModelWrapper, state: dict[str, Any], tmp: Path) -> None:
    try:
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
    except ImportError as exc:
        raise ConfigError(
            "format onnx needs the onnxscript package: pip install onnxscript"
        ) from exc
    shape = [int(v) for v in state["input"]["shape"]]
    example = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))  # (N, C, H, W)
    with eval_mode(model):
        program = torch.onnx.export(
            model,
            (example,),
            None,
            input_names=["pixels"],
            output_names=["logits"],
            opset_version=ONNX_OPSET,
            dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
            dynamo=True,
            verbose=False,
        )
    if program is None:
        raise RunError("torch.onnx.export returned no program")
    program.model.metadata_props["advlab"] = json.dumps(_describe(state), default=str)
    program.save(tmp, external_data=False)


def _import_keras() -> Any:
    # Keras picks its backend once, at import; torch is the one advlab always has.
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as exc:
        raise ConfigError("format h5 needs Keras 3: pip install 'keras>=3.3'") from exc
    if not str(keras.__version__).startswith("3."):
        raise ConfigError(f"format h5 needs Keras 3, found keras {keras.__version__}")
    return keras


def _keras_layer(keras: Any, layer: _Layer) -> Any:
    if layer.class_name == "Activation" and layer.config["activation"] == "lecun":
        # 1.7159 tanh(2x/3) + 0.01x from built-in layers, so plain Keras can load the file.
        shape = layer.shape
        x = keras.Input((*shape[1:], shape[0]) if len(shape) == 3 else shape)
        t = keras.layers.Activation("tanh")(keras.layers.Rescaling(2.0 / 3.0)(x))
        y = keras.layers.Add()([keras.layers.Rescaling(1.7159)(t), keras.layers.Rescaling(0.01)(x)])
        return keras.Model(x, y, name=f"{_LECUN_PREFIX}_{layer.name}")
    cls = getattr(keras.layers, layer.class_name)
    return cls(name=layer.name, **layer.config)


def _write_h5(model: ModelWrapper, state: dict[str, Any], tmp: Path) -> None:
    name = state["model"]["name"]
    shape = tuple(int(v) for v in state["input"]["shape"])  # (C, H, W) or (D,)
    layers = keras_layers(model.inner, shape, name)
    keras = _import_keras()
    keras_shape = (*shape[1:], shape[0]) if len(shape) == 3 else shape
    stack: list[Any] = [keras.Input(keras_shape, name="pixels")]
    mean, std = state["wrapper"]["mean"], state["wrapper"]["std"]
    if mean is not None and std is not None:
        # (x - mean) / sqrt(variance); the variance of a float32 std is exact in float64.
        variance = [float(s) ** 2 for s in std]
        stack.append(
            keras.layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalize")
        )
    built = [_keras_layer(keras, layer) for layer in layers]
    net = keras.Sequential(stack + built, name=f"advlab_{name}")
    for layer, keras_layer in zip(layers, built, strict=True):
        weights = _to_keras_weights(layer)
        if weights:
            keras_layer.set_weights(weights)
    _check_keras(model, net, shape)
    net.save(str(tmp))
    import h5py

    with h5py.File(tmp, "a") as f:
        f.attrs["advlab"] = json.dumps(_describe(state), default=str)


def _check_keras(model: ModelWrapper, net: Any, shape: tuple[int, ...]) -> None:
    """Refuse to write a Keras model whose predictions differ from the PyTorch model's."""
    x = torch.rand(4, *shape, generator=torch.Generator().manual_seed(0))  # (N, C, H, W)
    with eval_mode(model), torch.no_grad():
        expected = model(x).numpy()
    keras_x = x.permute(0, 2, 3, 1).numpy() if x.dim() == 4 else x.numpy()  # (N, H, W, C)
    with warnings.catch_warnings():
        # Keras' torch backend converts with np.array(tensor), which numpy 2 warns about.
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        found = np.asarray(net.predict(keras_x, verbose=0))
    diff = float(np.abs(found - expected).max())
    bound = _KERAS_TOLERANCE * (1.0 + float(np.abs(expected).max()))
    log.debug("Keras vs PyTorch logits: max |diff| %.3g", diff)
    if not diff <= bound:
        raise RunError(
            f"Keras export: the Keras model's logits differ from PyTorch's by {diff:.3g} "
            f"(expected at most {bound:.3g}); not writing the file"
        )


# ------------------------------------------------------------------------------- import_h5


@dataclass
class _FileLayer:
    """One layer of a Keras H5 file: signature plus where its weights are."""

    name: str
    class_name: str
    config: dict[str, Any]

    @property
    def signature(self) -> str:
        return _Layer(self.name, self.class_name, self.config).signature


def _file_layers(layers: list[dict[str, Any]], where: str) -> list[_FileLayer]:
    """The file's layers in the form `keras_layers` produces: activations split out of conv
    and dense layers, ReLU layers as ``Activation(relu)``, the LeCun sub-model recognised."""
    out: list[_FileLayer] = []
    for entry in layers:
        cls, cfg = entry.get("class_name", ""), dict(entry.get("config", {}))
        name = str(cfg.get("name", cls))
        if cls in ("Functional", "Model") and name.startswith(_LECUN_PREFIX):
            out.append(_FileLayer(name, "Activation", {"activation": "lecun"}))
            continue
        if cls == "ReLU":
            plain = (
                cfg.get("max_value") is None
                and not cfg.get("negative_slope")
                and not cfg.get("threshold")
            )
            cls, cfg = "Activation", {"activation": "relu" if plain else "relu(custom)"}
        if cls in ("Conv2D", "Dense") and cfg.get("activation", "linear") != "linear":
            act = cfg.pop("activation")
            out.append(_FileLayer(name, cls, cfg))
            out.append(_FileLayer(f"{name}_activation", "Activation", {"activation": act}))
            continue
        if cls == "Conv2D" and cfg.get("data_format", "channels_last") != "channels_last":
            raise RunError(f"{where}: layer {name!r} is channels_first; expected channels_last")
        if cls == "Activation" and cfg.get("activation") == "linear":
            continue
        out.append(_FileLayer(name, cls, cfg))
    if out and out[-1].class_name == "Activation" and out[-1].config["activation"] == "softmax":
        log.info("%s: leaving out the final softmax; advlab models return logits", where)
        out.pop()
    return out


def _input_shape(layers: list[dict[str, Any]], where: str) -> tuple[int, ...]:
    """(H, W, C) or (D,) from the InputLayer (Keras 3) or first layer (Keras 2) config."""
    for entry in layers[:1]:
        cfg = entry.get("config", {})
        batch_shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        if batch_shape and all(isinstance(v, int) for v in batch_shape[1:]):
            return tuple(int(v) for v in batch_shape[1:])
    raise RunError(f"{where}: the model config gives no fixed input shape")


def _normalization(
    entry: dict[str, Any], group: Any, where: str
) -> tuple[list[float], list[float]]:
    cfg = entry.get("config", {})
    mean, variance = cfg.get("mean"), cfg.get("variance")
    if mean is None or variance is None:  # adapted, not given: the values are weights
        names = [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in group.attrs.get("weight_names", [])
        ]
        if len(names) < 2:
            raise RunError(f"{where}: Normalization layer without mean and variance")
        mean, variance = (np.asarray(group[n]).reshape(-1).tolist() for n in names[:2])
    if cfg.get("invert"):
        raise RunError(f"{where}: an inverted Normalization layer is not an input normalisation")
    mean_l = [float(v) for v in np.atleast_1d(np.asarray(mean, dtype=np.float64))]
    std_l = [math.sqrt(float(v)) for v in np.atleast_1d(np.asarray(variance, dtype=np.float64))]
    return mean_l, std_l


def import_h5(path: Path, model_name: str | None = None, **cfg: Any) -> ModelWrapper:
    """Read a Keras legacy H5 file into the matching advlab model, with h5py alone.

    The input shape comes from the file's input layer (channels last), the class count from
    its last dense layer and, for files advlab wrote, the model name and config from the
    ``advlab`` attribute; `model_name` and `cfg` override them. A leading ``Normalization``
    layer becomes the wrapper's mean and std (bounds [0, 1]). BatchNorm epsilon and momentum
    and Dropout rates are taken from the file.

    Args:
        path: A ``.h5`` file written by `export_model` or by Keras (``Sequential`` models).
        model_name: Registered advlab model name; needed for files advlab did not write.
        **cfg: Model factory configuration (e.g. ``dropout``, ``activation_name``, ``width``).

    Returns:
        The `ModelWrapper`, in eval mode, on the CPU.

    Raises:
        RunError: The file is missing, not a Keras H5 model, or its layers or weight shapes do
            not match the advlab model.
        ConfigError: No model name is known, or `cfg` is invalid for the model.
    """
    import h5py

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise RunError(f"{where}: no file there")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise RunError(f"{where}: not a readable HDF5 file ({exc})") from exc
    with f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise RunError(f"{where}: not a Keras H5 model (no model_config or model_weights)")
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        if config.get("class_name") != "Sequential":
            raise RunError(
                f"{where}: expected a Keras Sequential model, found {config.get('class_name')}"
            )
        entries: list[dict[str, Any]] = list(config["config"]["layers"])
        keras_shape = _input_shape(entries, where)
        entries = [e for e in entries if e.get("class_name") != "InputLayer"]
        weights_group = f["model_weights"]

        def group_of(entry: dict[str, Any]) -> Any:
            layer_name = entry.get("config", {}).get("name", "")
            return weights_group.get(layer_name)

        mean = std = None
        if entries and entries[0].get("class_name") == "Normalization":
            mean, std = _normalization(entries[0], group_of(entries[0]), where)
            entries = entries[1:]
        file_layers = _file_layers(entries, where)

        recorded: dict[str, Any] = {}
        if "advlab" in f.attrs:
            raw_info = f.attrs["advlab"]
            recorded = json.loads(raw_info.decode() if isinstance(raw_info, bytes) else raw_info)
        name = model_name or recorded.get("model")
        if not name:
            raise ConfigError(
                f"model_name: {where} was not written by advlab; name the advlab "
                "model it holds (advlab list models)"
            )
        dense = [layer for layer in file_layers if layer.class_name == "Dense"]
        if not dense:
            raise RunError(f"{where}: no Dense layer, so no class count")
        num_classes = int(dense[-1].config["units"])
        shape = (keras_shape[-1], *keras_shape[:-1]) if len(keras_shape) == 3 else keras_shape
        if len(shape) == 3:
            factory_cfg = input_config(name, (shape[0], shape[1], shape[2]), num_classes)
        else:
            factory_cfg = {"num_classes": num_classes}
        if recorded.get("model") == name:
            factory_cfg.update(recorded.get("config") or {})
        factory_cfg.update(cfg)
        model = ModelWrapper(create_model(name, **factory_cfg), mean=mean, std=std)
        layers = keras_layers(model.inner, shape, name)

        expected = [layer.signature for layer in layers]
        found = [layer.signature for layer in file_layers]
        if expected != found:
            at = next(
                (i for i, (a, b) in enumerate(zip(expected, found, strict=False)) if a != b),
                min(len(expected), len(found)),
            )
            raise RunError(
                f"{where}: the file's layers do not match {name} {factory_cfg}: at layer {at} "
                f"expected {expected[at] if at < len(expected) else 'the end'}, found "
                f"{found[at] if at < len(found) else 'the end'} (expected {len(expected)} "
                f"layers, found {len(found)})"
            )
        for layer, file_layer in zip(layers, file_layers, strict=True):
            if isinstance(layer.module, nn.BatchNorm2d):
                layer.module.eps = float(file_layer.config.get("epsilon", layer.module.eps))
                # Keras keeps 1 - torch's momentum; round off the float noise of 1 - m.
                momentum = file_layer.config.get("momentum")
                if momentum is not None:
                    layer.module.momentum = round(1.0 - float(momentum), 12)
            if isinstance(layer.module, nn.Dropout):
                layer.module.p = float(file_layer.config.get("rate", layer.module.p))
            if layer.module is None or not isinstance(
                layer.module, nn.Conv2d | nn.Linear | nn.BatchNorm2d
            ):
                continue
            group = weights_group.get(file_layer.name)
            if group is None:
                raise RunError(f"{where}: no weights stored for layer {file_layer.name!r}")
            names = [
                n.decode() if isinstance(n, bytes) else str(n)
                for n in group.attrs.get("weight_names", [])
            ]
            arrays = [np.asarray(group[n]) for n in names]
            _from_keras_weights(layer, arrays, where)
    return model.eval()


__all__ = [
    "FORMATS",
    "ONNX_OPSET",
    "default_export_path",
    "export_model",
    "import_h5",
    "keras_layers",
]
