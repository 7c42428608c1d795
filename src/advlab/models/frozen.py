"""Frozen inference copies of a classifier, for attacks that only query the model.

Query-based attacks (the one-pixel attack's differential evolution, Sparse-RS) spend nearly
all their time in the model's forward pass, so their speed limit is the speed of inference.
`freeze_for_inference` lifts that limit on CPU by running the same network through PyTorch's
inference graph: the model is traced with TorchScript, frozen (parameters become constants and
batch norm is folded into the preceding convolution) and optimised for inference (on CPU,
oneDNN convolutions with pre-packed weights and fused add / ReLU). The function computed is
the same up to float rounding; the copy is checked against the model on the example batch and
on its colour-inverted copy, and refused when it differs (tracing records one path through a
forward pass whose control flow depends on its input).

Measured on the benchmark's CIFAR-10 ResNet-18 on 2 CPU threads: about 1.4x the images/s of
the eager model (`benchmarks/one_pixel.py` reports it next to plain inference). TorchScript is
deprecated upstream in favour of `torch.compile`, which needs a C++ compiler at run time and
fixed shapes; this module uses TorchScript while the pinned PyTorch ships it.
"""

from __future__ import annotations

import warnings
import weakref

import torch
from torch import nn

from advlab.errors import AttackError

# Logits of the copy may differ from the model's by float rounding (folded batch norm sums in
# another order): at most this much, relative to the largest logit (at least 1).
TOLERANCE = 1e-3


class FrozenClassifier(nn.Module):
    """Inference-only copy of a ModelWrapper-like classifier; same `bounds`, no gradients.

    Build it with `freeze_for_inference`. Calling it runs the frozen TorchScript graph under
    `torch.no_grad()`; it has no parameters to train, and `train()` does not change it.
    """

    def __init__(self, graph: torch.jit.ScriptModule, bounds: tuple[float, float]) -> None:
        super().__init__()
        self.graph = graph
        self.bounds = bounds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The graph is optimised once, when frozen; with the executor's own optimisation on,
        # every new batch size (the last chunk of a generation, images that stop) would be
        # profiled and specialised again, which costs more than it gains here.
        with torch.no_grad(), torch.jit.optimized_execution(False):
            out: torch.Tensor = self.graph(x)
        return out


_cache: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[object, ...], FrozenClassifier]] = (
    weakref.WeakKeyDictionary()
)


def _version(model: nn.Module) -> tuple[object, ...]:
    """Changes whenever a parameter or buffer of `model` is replaced or updated in place."""
    tensors = [*model.parameters(), *model.buffers()]
    return tuple((id(t), t._version, t.device, t.dtype) for t in tensors)


def freeze_for_inference(model: nn.Module, example: torch.Tensor) -> FrozenClassifier:
    """A frozen, inference-optimised copy of `model` (eval mode), checked on `example`.

    Args:
        model: A ModelWrapper-like classifier (an nn.Module with `bounds`) whose forward pass
            does not branch on its input.
        example: A batch of inputs (N, C, H, W) in the model's bounds, of the shapes the copy
            will see; it traces the model, and the copy is checked on it and on its
            colour-inverted copy (any batch size works afterwards).

    Returns:
        A `FrozenClassifier`. The copy is cached per model and rebuilt when one of the model's
        parameters or buffers changes.

    Raises:
        AttackError: if the model cannot be traced, or its frozen copy gives other logits
            than the model on `example` or its inverted copy.
    """
    bounds = getattr(model, "bounds", None)
    if not isinstance(model, nn.Module) or not isinstance(bounds, tuple):
        raise AttackError(
            "model: freezing needs a ModelWrapper-like nn.Module with .bounds, found "
            f"{type(model).__name__}"
        )
    version = _version(model)
    cached = _cache.get(model)
    if cached is not None and cached[0] == version:
        return cached[1]
    states = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notices
            # Checked on the example and on its colour-inverted copy: a branch taken on the
            # example's statistics would be baked into the trace and differ on the other.
            low, high = float(bounds[0]), float(bounds[1])
            probes = (example, (low + high) - example)
            reference = torch.cat([model(p) for p in probes])
            try:
                traced = torch.jit.trace(model, example, check_trace=False)
                graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
                frozen = FrozenClassifier(graph, (low, high))
                out = torch.cat([frozen(p) for p in probes])
            except Exception as error:  # any tracing failure means "cannot be frozen"
                raise AttackError(
                    f"model: {type(model).__name__} cannot be frozen with TorchScript "
                    f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''});"
                    " run the attack with frozen=False"
                ) from error
    finally:
        for module, training in states:
            module.training = training
    scale = max(1.0, float(reference.abs().max()))
    gap = float((out.float() - reference.float()).abs().max())
    if gap > TOLERANCE * scale:
        raise AttackError(
            "model: its frozen TorchScript copy differs from it on the example batch or its "
            f"inverted copy (largest logit difference {gap:.3g}); its forward pass probably "
            "depends on the input in a way tracing cannot capture: run the attack with "
            "frozen=False"
        )
    _cache[model] = (version, frozen)
    return frozen
