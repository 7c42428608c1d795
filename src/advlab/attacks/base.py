"""Attack base classes.

`Attack.__call__` is final: it validates the model, inputs, criterion and epsilons in one place,
lets the attack kind (`FixedEpsilonAttack`, `MinimizationAttack`) call the subclass's `run`,
projects onto each epsilon ball and measures success with a fresh forward pass. Subclasses
implement `run` only.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any, ClassVar, Generic, TypeGuard, TypeVar, final, overload

import torch
from torch import nn

from advlab.attacks.criteria import Criterion, Misclassification, TargetedMisclassification
from advlab.attacks.distances import Distance
from advlab.errors import AttackError, ConfigError
from advlab.models.wrapper import eval_mode

Tensors = list[torch.Tensor]


def get_bounds(model: object) -> tuple[float, float]:
    """The model's pixel bounds (min, max); AttackError if it is not a ModelWrapper-like module."""
    bounds = getattr(model, "bounds", None)
    if not isinstance(model, nn.Module) or not (
        isinstance(bounds, tuple) and len(bounds) == 2 and all(_is_real(b) for b in bounds)
    ):
        raise AttackError(
            "model: expected a ModelWrapper-like nn.Module with .bounds = (min, max), "
            f"found {type(model).__name__} with bounds={bounds!r}"
        )
    return float(bounds[0]), float(bounds[1])


def check_inputs(model: nn.Module, inputs: object) -> torch.Tensor:
    """Returns `inputs`, detached, if it is a finite float (N, C, H, W) tensor in the model's
    bounds, on the model's device and of its dtype; raises AttackError naming what is wrong."""
    low, high = get_bounds(model)
    expected = "a float tensor of shape (N, C, H, W) with N >= 1"
    if not isinstance(inputs, torch.Tensor):
        raise AttackError(f"inputs: expected {expected}, found {type(inputs).__name__}")
    if inputs.ndim != 4 or inputs.shape[0] == 0:
        raise AttackError(f"inputs: expected {expected}, found shape {tuple(inputs.shape)}")
    if not inputs.is_floating_point():
        raise AttackError(f"inputs: expected {expected}, found dtype {inputs.dtype}")
    inputs = inputs.detach()
    first = next(chain(model.parameters(), model.buffers()), None)
    if first is not None and inputs.device != first.device:
        raise AttackError(
            f"inputs: expected on device {first.device} (the model's), found {inputs.device}"
        )
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype is not None and inputs.dtype != dtype:
        raise AttackError(f"inputs: expected dtype {dtype} (the model's), found {inputs.dtype}")
    if not bool(torch.isfinite(inputs).all()):
        raise AttackError("inputs: expected finite values, found NaN or inf")
    found_low, found_high = float(inputs.min()), float(inputs.max())
    if found_low < low or found_high > high:
        raise AttackError(
            f"inputs: expected values in [{low}, {high}] (the model's bounds), "
            f"found values in [{found_low}, {found_high}]"
        )
    return inputs


def get_criterion(criterion_or_labels: object) -> Criterion:
    """A Criterion as is; a label tensor becomes `Misclassification(labels)`."""
    if isinstance(criterion_or_labels, Criterion):
        return criterion_or_labels
    if isinstance(criterion_or_labels, torch.Tensor):
        return Misclassification(criterion_or_labels)
    raise AttackError(
        "criterion_or_labels: expected a Criterion or an int64 label tensor (N,), "
        f"found {type(criterion_or_labels).__name__}"
    )


def get_labels(criterion: Criterion) -> tuple[torch.Tensor, bool]:
    """The classes a loss-based attack works with, and whether it is targeted.

    Returns `(labels, False)` for Misclassification and `(target_classes, True)` for
    TargetedMisclassification; AttackError for any other criterion.
    """
    if isinstance(criterion, Misclassification):
        return criterion.labels, False
    if isinstance(criterion, TargetedMisclassification):
        return criterion.target_classes, True
    raise AttackError(
        f"criterion: expected Misclassification or TargetedMisclassification, found {criterion!r}"
    )


def check_logits(model: nn.Module, inputs: torch.Tensor, criterion: Criterion) -> None:
    """AttackError unless `model` maps the first of `inputs` (checked ones, see `check_inputs`)
    to logits (1, num_classes) and `criterion` fits N = len(inputs) and those classes; the probe
    runs without gradients in the model's current mode (callers hold it in `eval_mode`)."""
    with torch.no_grad():
        probe = model(inputs[:1])
    if not isinstance(probe, torch.Tensor) or probe.ndim != 2:
        found = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe)
        raise AttackError(f"model: expected logits of shape (N, num_classes), found {found}")
    criterion.validate(
        num_samples=inputs.shape[0], num_classes=probe.shape[1], device=inputs.device
    )


def get_epsilons(epsilons: object) -> tuple[list[float | None], bool]:
    """Epsilons as a list of floats (or None) >= 0, and whether a sequence was given."""
    expected = "a finite number >= 0, None, or a non-empty sequence of them"
    if epsilons is None or _is_real(epsilons):
        items: list[object] = [epsilons]
        was_sequence = False
    elif isinstance(epsilons, Iterable) and not isinstance(epsilons, str | bytes):
        items = list(epsilons)
        was_sequence = True
    else:
        raise AttackError(f"epsilons: expected {expected}, found {type(epsilons).__name__}")
    if not items:
        raise AttackError(f"epsilons: expected {expected}, found an empty sequence")
    result: list[float | None] = []
    for eps in items:
        if eps is None:
            result.append(None)
        elif _is_real(eps) and math.isfinite(float(eps)) and float(eps) >= 0:
            result.append(float(eps))
        else:
            raise AttackError(f"epsilons: expected {expected}, found {eps!r}")
    return result, was_sequence


def raise_if_kwargs(kwargs: dict[str, Any]) -> None:
    """For `run` implementations that take no extra keyword arguments."""
    if kwargs:
        raise AttackError(f"run: unexpected keyword arguments {sorted(kwargs)}")


def _is_real(value: object) -> TypeGuard[numbers.Real]:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: object, *, minimum: int = 1, optional: bool = False) -> None:
    """ConfigError unless `value` is an int >= `minimum` (or None when `optional`)."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = f"{'None or ' if optional else ''}an int >= {minimum}"
        raise ConfigError(f"{name}: expected {expected}, found {value!r}")


def check_float(
    name: str, value: object, *, minimum: float = 0.0, strict: bool = False, optional: bool = False
) -> None:
    """ConfigError unless `value` is a finite number >= `minimum` (> when `strict`)."""
    if optional and value is None:
        return
    ok = _is_real(value) and math.isfinite(float(value))
    if ok:
        ok = float(value) > minimum if strict else float(value) >= minimum  # type: ignore[arg-type]
    if not ok:
        op = ">" if strict else ">="
        expected = f"{'None or ' if optional else ''}a finite number {op} {minimum:g}"
        raise ConfigError(f"{name}: expected {expected}, found {value!r}")


CPU_CHUNK = 128
"""Samples per forward/backward pass on CPU when an attack is not given a batch size.

Measured with the MNIST CNN of benchmarks/attacks.py on 2 cores: a loss gradient over 1,000
images takes 0.25 s at once and 0.12 s in chunks of 64 to 200, since the activations of a
chunk stay in cache (`CPU_CHUNK` in benchmarks/README.md)."""


def chunk_size(x: torch.Tensor, batch_size: int | None) -> int:
    """Samples per pass: `batch_size` if given, else `CPU_CHUNK` on CPU and the whole batch
    on an accelerator."""
    if batch_size is not None:
        return batch_size
    return CPU_CHUNK if x.device.type == "cpu" else max(x.shape[0], 1)


def chunked_logits(
    model: nn.Module, x: torch.Tensor, batch_size: int | None = None
) -> torch.Tensor:
    """`model(x)` without gradients, in chunks of `chunk_size(x, batch_size)`."""
    chunk = chunk_size(x, batch_size)
    with torch.no_grad():
        return torch.cat([model(xs) for xs in x.split(chunk)])


def generator_for(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A private generator seeded with `seed` on `device`; None (torch's global RNG) for None."""
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


class Attack(ABC):
    """An adversarial attack on a ModelWrapper-like classifier in pixel space.

    Subclasses declare `distance` (the norm of their budget) and implement `run`; kinds set how
    `run` is called (`FixedEpsilonAttack`, `MinimizationAttack`). `unbounded = True` marks
    attacks without a norm budget: their outputs are not projected onto epsilon balls (clipped
    is raw) and `distance` is the norm their perturbations are reported in.

    Args:
        Keyword-only, stored unchanged, defined by each subclass.

    Returns:
        Calling an attack as `attack(model, inputs, criterion_or_labels, epsilons=...)` returns
        `(raw, clipped, success)`: the perturbed inputs as the attack made them, the same
        projected onto each epsilon ball of `distance`, and a bool tensor (N,) saying which
        clipped inputs the criterion calls adversarial. Given a sequence of epsilons, each of
        the three is a list with one entry per epsilon; given a single epsilon, single items.

    References:
        Rauber, Zimmermann, Bethge, Brendel 2020, "Foolbox Native: Fast adversarial attacks to
        benchmark the robustness of machine learning models in PyTorch, TensorFlow, and JAX".
    """

    distance: ClassVar[Distance]
    unbounded: ClassVar[bool] = False

    @abstractmethod
    def run(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        *,
        epsilon: float | None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Perturbed inputs (N, C, H, W) in the model's bounds, not yet projected onto epsilon."""

    @abstractmethod
    def _perturb(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        epsilons: list[float | None],
        **kwargs: Any,
    ) -> tuple[Tensors, Tensors]:
        """Raw and clipped inputs, one each per epsilon; implemented by the attack kinds."""

    def _clip(self, inputs: torch.Tensor, raw: torch.Tensor, epsilon: float | None) -> torch.Tensor:
        if self.unbounded or epsilon is None:
            return raw
        return self.distance.clip_perturbation(inputs, raw, epsilon)

    @overload
    def __call__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion_or_labels: Criterion | torch.Tensor,
        *,
        epsilons: float | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...

    @overload
    def __call__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion_or_labels: Criterion | torch.Tensor,
        *,
        epsilons: Sequence[float | None],
        **kwargs: Any,
    ) -> tuple[Tensors, Tensors, Tensors]: ...

    @final
    def __call__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion_or_labels: Criterion | torch.Tensor,
        *,
        epsilons: float | Sequence[float | None] | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | tuple[Tensors, Tensors, Tensors]:
        x = check_inputs(model, inputs)  # (N, C, H, W) in bounds, detached
        criterion = get_criterion(criterion_or_labels)
        eps_list, was_sequence = get_epsilons(epsilons)
        n = x.shape[0]
        with eval_mode(model):
            check_logits(model, x, criterion)
            raw, clipped = self._perturb(model, x, criterion, eps_list, **kwargs)
            chunk = getattr(self, "batch_size", None)
            success = [self._is_adversarial(model, criterion, xc, n, chunk) for xc in clipped]
        if was_sequence:
            return raw, clipped, success
        return raw[0], clipped[0], success[0]

    @staticmethod
    def _is_adversarial(
        model: nn.Module,
        criterion: Criterion,
        perturbed: torch.Tensor,
        n: int,
        batch_size: int | None,
    ) -> torch.Tensor:
        is_adv = criterion(perturbed, chunked_logits(model, perturbed, batch_size))
        if (
            not isinstance(is_adv, torch.Tensor)
            or is_adv.dtype != torch.bool
            or is_adv.shape != (n,)
        ):
            found = (
                f"{is_adv.dtype} of shape {tuple(is_adv.shape)}"
                if isinstance(is_adv, torch.Tensor)
                else type(is_adv).__name__
            )
            raise AttackError(f"criterion: expected a bool tensor of shape ({n},), found {found}")
        return is_adv

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class FixedEpsilonAttack(Attack):
    """An attack that looks for adversarials within a given budget, run once per epsilon.

    `run` gets each epsilon in turn; its output is the raw result for that epsilon, which is
    then projected onto the epsilon ball of `distance` (in case `run` overshoots).

    Args:
        Keyword-only, stored unchanged, defined by each subclass.

    Returns:
        As `Attack`; raw holds one `run` output per epsilon. Epsilon None is refused unless
        the attack is `unbounded`.

    References:
        Rauber, Zimmermann, Bethge, Brendel 2020, "Foolbox Native: Fast adversarial attacks to
        benchmark the robustness of machine learning models in PyTorch, TensorFlow, and JAX".
    """

    def _check_budgets(self, epsilons: list[float | None]) -> None:
        if not self.unbounded and None in epsilons:
            raise AttackError(
                f"epsilons: {type(self).__name__} has a fixed budget and needs a number for "
                f"every epsilon, found {epsilons}"
            )

    def _perturb(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        epsilons: list[float | None],
        **kwargs: Any,
    ) -> tuple[Tensors, Tensors]:
        self._check_budgets(epsilons)
        raw = [self.run(model, inputs, criterion, epsilon=eps, **kwargs) for eps in epsilons]
        clipped = [self._clip(inputs, r, eps) for r, eps in zip(raw, epsilons, strict=True)]
        return raw, clipped


class MinimizationAttack(Attack):
    """An attack that looks for the smallest adversarial perturbation, run once for all epsilons.

    `run` gets `epsilon=min(epsilons)` as a hint that it may stop once it is below it, or None
    (some epsilon is None, or the attack is `unbounded`) to minimise without limit. Its output
    is the raw result for every epsilon; clipped is that projected onto each epsilon ball.

    Args:
        Keyword-only, stored unchanged, defined by each subclass.

    Returns:
        As `Attack`; raw is the same tensor for every epsilon, and for epsilon None clipped
        is raw.

    References:
        Rauber, Zimmermann, Bethge, Brendel 2020, "Foolbox Native: Fast adversarial attacks to
        benchmark the robustness of machine learning models in PyTorch, TensorFlow, and JAX".
    """

    def _perturb(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        epsilons: list[float | None],
        **kwargs: Any,
    ) -> tuple[Tensors, Tensors]:
        numeric = [eps for eps in epsilons if eps is not None]
        early_stop = None if self.unbounded or len(numeric) < len(epsilons) else min(numeric)
        raw = self.run(model, inputs, criterion, epsilon=early_stop, **kwargs)
        return [raw] * len(epsilons), [self._clip(inputs, raw, eps) for eps in epsilons]


R = TypeVar("R")


class CountedSearch(Generic[R]):
    """`run` and `search` of an unbounded attack whose search also counts something per image
    (`FoolingImage`: ascent steps; `SimpleGenerator`: training rounds). Put it before the
    attack's base class; the attack defines ``_counted(model, x, criterion) -> (adversarials,
    counts)`` and `result`, the result class built from (adversarials, success, counts)."""

    result: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], R]

    def _counted(
        self, model: nn.Module, inputs: torch.Tensor, criterion: Criterion
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def run(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        *,
        epsilon: float | None,
        **kwargs: Any,
    ) -> torch.Tensor:
        raise_if_kwargs(kwargs)
        return self._counted(model, inputs, criterion)[0]

    def search(
        self, model: nn.Module, inputs: torch.Tensor, criterion_or_labels: Criterion | torch.Tensor
    ) -> R:
        """Runs the attack on a batch and returns what it found: the adversarials, whether
        each is adversarial (the images and success of calling the attack with
        ``epsilons=None``) and each image's count (steps, rounds).

        Takes what `__call__` takes: a model, images, a criterion or labels.
        """
        x = check_inputs(model, inputs)
        criterion = get_criterion(criterion_or_labels)
        with eval_mode(model):
            check_logits(model, x, criterion)
            adversarials, counts = self._counted(model, x, criterion)
            success = Attack._is_adversarial(model, criterion, adversarials, x.shape[0], None)
        return self.result(adversarials, success, counts)
