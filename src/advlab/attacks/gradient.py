"""Gradient attacks: FGSM, the basic iterative method, projected gradient descent (Linf, L2),
and the loss gradient they all build on."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import (
    FixedEpsilonAttack,
    Tensors,
    check_float,
    check_int,
    chunk_size,
    generator_for,
    get_bounds,
    get_labels,
    raise_if_kwargs,
)
from advlab.attacks.criteria import Criterion
from advlab.attacks.distances import l2, linf
from advlab.attacks.random_streams import normal, uniform
from advlab.attacks.registry import ATTACKS
from advlab.errors import AttackError, ConfigError
from advlab.models.wrapper import eval_mode


def loss_gradient(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    targeted: bool = False,
    *,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Gradient of the attack objective with respect to the inputs only.

    The objective is the summed cross-entropy of `labels` (untargeted) or its negative for
    target classes (targeted), so an attack always ascends it. Summing keeps each sample's
    gradient independent of the batch and of `batch_size` chunking. The model's mode is left
    as it is; parameter `.grad` fields are never touched.

    Args:
        model: Classifier on pixels, (N, C, H, W) -> (N, num_classes) logits.
        x: Inputs (N, C, H, W).
        labels: True classes, or target classes when `targeted`, int64 (N,).
        targeted: Descend the target classes' loss instead of ascending the true labels'.
        batch_size: Samples per forward/backward pass; None for automatic (`chunk_size`:
            128 on CPU, where small chunks stay in cache, the whole batch on accelerators).

    Returns:
        The gradient, same shape and dtype as `x`.
    """
    chunk = chunk_size(x, batch_size)
    grads = []
    with torch.enable_grad():
        for xs, ys in zip(x.split(chunk), labels.split(chunk), strict=True):
            xs = xs.detach().requires_grad_(True)
            loss = F.cross_entropy(model(xs), ys, reduction="sum")
            (grad,) = torch.autograd.grad(-loss if targeted else loss, xs)
            grads.append(grad)
    return torch.cat(grads)


@ATTACKS.register("fgsm", help="Fast gradient sign method, one Linf step (Goodfellow et al. 2015)")
class FGSM(FixedEpsilonAttack):
    """Fast gradient sign method (LinfFastGradientAttack): one step of size epsilon.

    Computes `clamp(x + epsilon * sign(grad_x CE(model(x), labels)), *bounds)`; for a
    TargetedMisclassification it descends the target classes' cross-entropy instead. One
    forward/backward pass per batch (or per `batch_size` chunk), with the model in eval mode;
    its train/eval flags are restored afterwards and parameter gradients are left untouched.

    Args:
        batch_size: Samples per forward/backward pass; None for automatic (`chunk_size`).

    Returns:
        As `Attack`: `(raw, clipped, success)`; raw is already within the Linf ball, so clipped
        equals raw.

    References:
        Goodfellow, Shlens, Szegedy 2015, "Explaining and Harnessing Adversarial Examples".
    """

    distance = linf

    def __init__(self, *, batch_size: int | None = None) -> None:
        check_int("batch_size", batch_size, optional=True)
        self.batch_size = batch_size

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
        if epsilon is None:
            raise AttackError("epsilon: FGSM needs a number >= 0, found None")
        return self._steps(model, inputs, criterion, [epsilon])[0]

    def _perturb(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        criterion: Criterion,
        epsilons: list[float | None],
        **kwargs: Any,
    ) -> tuple[Tensors, Tensors]:
        # The direction does not depend on epsilon: one gradient serves every epsilon.
        raise_if_kwargs(kwargs)
        self._check_budgets(epsilons)
        raw = self._steps(model, inputs, criterion, [float(e) for e in epsilons if e is not None])
        return raw, raw  # each step stays in its Linf ball and the bounds

    def _steps(
        self, model: nn.Module, inputs: torch.Tensor, criterion: Criterion, epsilons: list[float]
    ) -> Tensors:
        labels, targeted = get_labels(criterion)
        low, high = get_bounds(model)
        x = inputs.detach()  # (N, C, H, W) in bounds
        with eval_mode(model):
            sign = loss_gradient(model, x, labels, targeted, batch_size=self.batch_size).sign()
        return [(x + eps * sign).clamp(low, high) for eps in epsilons]


class _Draws:
    """The random start's numbers from one torch generator for the whole batch (or torch's
    global one), shaped like the request."""

    def __init__(self, gen: torch.Generator | None, like: torch.Tensor) -> None:
        self.gen, self.device, self.dtype = gen, like.device, like.dtype

    def rand(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.rand(shape, generator=self.gen, device=self.device, dtype=self.dtype)

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen, device=self.device, dtype=self.dtype)


class _StreamDraws(_Draws):
    """The random start's numbers from each image's own counter-based stream
    (`random_streams`, keyed by the image's id): the same for an image in any batch, chunk or
    shard. The first dimension of every request is the images'."""

    def __init__(self, seed: int | None, ids: Any, like: torch.Tensor) -> None:
        super().__init__(None, like)
        n = like.shape[0]
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.int64 or ids.shape != (n,):
            raise AttackError(f"image_ids: expected an int64 tensor of shape ({n},), found {ids!r}")
        self.ids = ids.to(like.device)
        self.seed = int(torch.randint(0, 2**62, ()).item()) if seed is None else seed
        self.calls = 0

    def _stream(self) -> int:
        self.calls += 1
        return 2 * self.calls  # normal() reads streams k and k + 1

    def rand(self, shape: tuple[int, ...]) -> torch.Tensor:
        u = uniform(self.seed, self._stream(), self.ids, 0, shape[1:])
        return u.to(self.dtype).view(shape)

    def randn(self, shape: tuple[int, ...]) -> torch.Tensor:
        z = normal(self.seed, self._stream(), self.ids, 0, shape[1:])
        return z.to(self.dtype).view(shape)


class _Iterative(FixedEpsilonAttack):
    """Iterated gradient steps from an optional random start, projected onto the epsilon ball
    of `distance` and the model's bounds after every step.

    Subclasses set `distance` and implement `_step` (the direction of one step) and
    `_random_start` (a uniform draw from the ball).
    """

    random_start: bool = False
    seed: int | None = None

    def __init__(
        self,
        *,
        steps: int,
        rel_stepsize: float | None,
        abs_stepsize: float | None,
        batch_size: int | None,
    ) -> None:
        check_int("steps", steps)
        check_float("rel_stepsize", rel_stepsize, strict=True, optional=True)
        check_float("abs_stepsize", abs_stepsize, strict=True, optional=True)
        check_int("batch_size", batch_size, optional=True)
        self.steps = steps
        self.rel_stepsize = rel_stepsize
        self.abs_stepsize = abs_stepsize
        self.batch_size = batch_size

    def _set_random_start(self, random_start: bool, seed: int | None) -> None:
        if not isinstance(random_start, bool):
            raise ConfigError(f"random_start: expected True or False, found {random_start!r}")
        check_int("seed", seed, minimum=0, optional=True)
        self.random_start = random_start
        self.seed = seed

    def stepsize(self, epsilon: float) -> float:
        """The step length: `abs_stepsize`, else `rel_stepsize * epsilon`, else epsilon/steps."""
        if self.abs_stepsize is not None:
            return self.abs_stepsize
        if self.rel_stepsize is not None:
            return self.rel_stepsize * epsilon
        return epsilon / self.steps

    def _step(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _random_start(self, x: torch.Tensor, epsilon: float, draw: _Draws) -> torch.Tensor:
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
        image_ids = kwargs.pop("image_ids", None)
        raise_if_kwargs(kwargs)
        if epsilon is None:
            raise AttackError(f"epsilon: {type(self).__name__} needs a number >= 0, found None")
        labels, targeted = get_labels(criterion)
        low, high = get_bounds(model)
        x0 = inputs.detach()  # (N, C, H, W) in bounds
        step = self.stepsize(epsilon)
        x = x0
        if self.random_start and epsilon > 0:
            draw: _Draws
            if image_ids is None:
                draw = _Draws(generator_for(self.seed, x0.device), x0)
            else:
                draw = _StreamDraws(self.seed, image_ids, x0)
            x = (x0 + self._random_start(x0, epsilon, draw)).clamp(low, high)
        chunk = chunk_size(x0, self.batch_size)
        out = []
        with eval_mode(model):  # all steps on one chunk, then the next: the chunk stays in cache
            chunks = zip(x0.split(chunk), x.split(chunk), labels.split(chunk), strict=True)
            for xs0, xs, ys in chunks:
                for _ in range(self.steps):
                    grad = loss_gradient(model, xs, ys, targeted, batch_size=chunk)
                    xs = xs + step * self._step(grad)
                    xs = self.distance.clip_perturbation(xs0, xs, epsilon).clamp(low, high)
                out.append(xs)
        return torch.cat(out)


@ATTACKS.register(
    "bim", help="Basic iterative method: FGSM in k steps of eps/k (Kurakin et al. 2017)"
)
class BIM(_Iterative):
    """Basic iterative method (iterative FGSM): `steps` sign-gradient steps from the input.

    Each step is `x <- clip(x + stepsize * sign(grad_x CE), ball, bounds)`; by default the step
    size is `epsilon / steps`, so k steps of eps/k as seed 002 asks (the projection onto the
    Linf ball then never binds). For a TargetedMisclassification each step descends the
    target classes' cross-entropy. No random start and no early stop, so with `steps=1` it is
    FGSM.

    Args:
        steps: Number of steps (seed 002: k = 5).
        rel_stepsize: Step size as a fraction of epsilon; None for `1 / steps`.
        abs_stepsize: Step size in pixel units; overrides `rel_stepsize`.
        batch_size: Samples per forward/backward pass; None for automatic (`chunk_size`).

    Returns:
        As `Attack`: `(raw, clipped, success)`, raw already inside the Linf ball.

    References:
        Kurakin, Goodfellow, Bengio 2017, "Adversarial Examples in the Physical World".
    """

    distance = linf

    def __init__(
        self,
        *,
        steps: int = 5,
        rel_stepsize: float | None = None,
        abs_stepsize: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__(
            steps=steps, rel_stepsize=rel_stepsize, abs_stepsize=abs_stepsize, batch_size=batch_size
        )

    def _step(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()


@ATTACKS.register("pgd", help="Projected gradient descent, Linf, random start (Madry et al. 2018)")
class LinfPGD(_Iterative):
    """Projected gradient descent in the Linf ball (Madry et al.), with a random start.

    Starts from a uniform draw in the epsilon ball (with `random_start`), then takes `steps`
    sign-gradient steps of `rel_stepsize * epsilon`, projecting onto the ball and the bounds
    after each. Defaults are foolbox 3's (40 steps of 0.01/0.3 * epsilon).

    Args:
        steps: Number of steps.
        rel_stepsize: Step size as a fraction of epsilon.
        abs_stepsize: Step size in pixel units; overrides `rel_stepsize`.
        random_start: Start from a uniform point of the ball instead of the input.
        batch_size: Samples per forward/backward pass; None for automatic (`chunk_size`).
        seed: Seed of the random start's private generator; None draws from torch's global
            generator (which `advlab run` seeds). Calling the attack with
            ``image_ids=`` (int64 (N,), the images' indices in a whole evaluation) draws each
            image's start from its own counter-based stream instead, so that a chunk or shard
            of the evaluation starts every image where the whole evaluation would.

    Returns:
        As `Attack`: `(raw, clipped, success)`, raw already inside the Linf ball.

    References:
        Madry, Makelov, Schmidt, Tsipras, Vladu 2018, "Towards Deep Learning Models
        Resistant to Adversarial Attacks".
    """

    distance = linf

    def __init__(
        self,
        *,
        steps: int = 40,
        rel_stepsize: float | None = 0.01 / 0.3,
        abs_stepsize: float | None = None,
        random_start: bool = True,
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            steps=steps, rel_stepsize=rel_stepsize, abs_stepsize=abs_stepsize, batch_size=batch_size
        )
        self._set_random_start(random_start, seed)

    def _step(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.sign()

    def _random_start(self, x: torch.Tensor, epsilon: float, draw: _Draws) -> torch.Tensor:
        return (2 * draw.rand(tuple(x.shape)) - 1) * epsilon


@ATTACKS.register("pgd-l2", help="Projected gradient descent, L2, random start (Madry et al. 2018)")
class L2PGD(_Iterative):
    """Projected gradient descent in the L2 ball, with a random start.

    Steps along the L2-normalised gradient, `rel_stepsize * epsilon` long, projecting onto the
    L2 ball and the bounds after each; the random start is uniform in the ball. Defaults are
    foolbox 3's (50 steps of 0.025 * epsilon).

    Args:
        steps: Number of steps.
        rel_stepsize: Step size as a fraction of epsilon.
        abs_stepsize: Step size in pixel units; overrides `rel_stepsize`.
        random_start: Start from a uniform point of the ball instead of the input.
        batch_size: Samples per forward/backward pass; None for automatic (`chunk_size`).
        seed: Seed of the random start's private generator; None draws from torch's global
            generator. ``image_ids=`` at call time: per-image streams, as `LinfPGD`.

    Returns:
        As `Attack`: `(raw, clipped, success)`, raw already inside the L2 ball.

    References:
        Madry, Makelov, Schmidt, Tsipras, Vladu 2018, "Towards Deep Learning Models
        Resistant to Adversarial Attacks".
    """

    distance = l2

    def __init__(
        self,
        *,
        steps: int = 50,
        rel_stepsize: float | None = 0.025,
        abs_stepsize: float | None = None,
        random_start: bool = True,
        batch_size: int | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            steps=steps, rel_stepsize=rel_stepsize, abs_stepsize=abs_stepsize, batch_size=batch_size
        )
        self._set_random_start(random_start, seed)

    def _step(self, grad: torch.Tensor) -> torch.Tensor:
        norms = torch.linalg.vector_norm(grad.flatten(1), dim=1).clamp_min(1e-12)
        return grad / norms.view(-1, *([1] * (grad.ndim - 1)))

    def _random_start(self, x: torch.Tensor, epsilon: float, draw: _Draws) -> torch.Tensor:
        # Uniform in the ball: a Gaussian direction, radius epsilon * U^(1/d).
        n, d = x.shape[0], x[0].numel()
        direction = draw.randn(tuple(x.shape))
        direction = direction / torch.linalg.vector_norm(direction.flatten(1), dim=1).clamp_min(
            1e-12
        ).view(-1, *([1] * (x.ndim - 1)))
        u = draw.rand((n,))
        radius = epsilon * u.pow(1.0 / d)
        return direction * radius.view(-1, *([1] * (x.ndim - 1)))
