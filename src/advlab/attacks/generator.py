"""The "simple generator" attack of seed 001, Exercise 2 (B): a generator per (image, class).

A MNIST-simple-generator f(w) is a network with one input neuron always equal to 1: a dense
layer from that constant to every pixel, with a sigmoid, so its parameters are, in effect, the
image. The exercise trains f_ij in two steps, repeated until the classifier C says class j:
fit f to sample i with the mean squared error (Adam), then train the composite C o f, C frozen,
towards the one-hot encoding of j (cross-entropy). Here every generator of a batch is one slice
of a single parameter tensor, trained at once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import (
    CountedSearch,
    FixedEpsilonAttack,
    check_float,
    check_int,
    generator_for,
    get_bounds,
    get_labels,
)
from advlab.attacks.criteria import Criterion
from advlab.attacks.distances import l2
from advlab.attacks.registry import ATTACKS
from advlab.models.wrapper import eval_mode


@dataclasses.dataclass(frozen=True)
class SimpleGeneratorResult:
    """What the generators made, per input.

    Attributes:
        adversarials: Each generator's last image (N, C, H, W).
        success: Whether the criterion calls that image adversarial, bool (N,) (the `success`
            that calling the attack returns).
        rounds: Rounds each generator ran (fit, then push) before it stopped, int64 (N,).
    """

    adversarials: torch.Tensor
    success: torch.Tensor
    rounds: torch.Tensor


@ATTACKS.register("generator", help="Simple-generator attack: fit, then fool, repeated (seed 001)")
class SimpleGenerator(CountedSearch[SimpleGeneratorResult], FixedEpsilonAttack):
    """Trains one simple generator per input, alternating a fit to the input and a push to
    the target class, until the model is fooled.

    Each generator is `f = low + (high - low) * sigmoid(w * 1 + b)` with per-pixel `w` and `b`
    (a dense layer from one constant input), initialised like Keras' glorot-uniform dense
    kernel and zero bias, and first fitted to its input for `warmup_steps`. One round is
    `fit_steps` Adam steps on `MSE(f, x)` followed by
    `push_steps` Adam steps on the cross-entropy of `model(f)` towards the target class (or
    away from the true class, untargeted); the model's parameters are never updated. A
    generator stops at the first push step after which the criterion calls its image
    adversarial (so it is not pushed further than needed); after
    `max_rounds` the last image is returned either way. There is no norm budget (the attack
    is `unbounded`): the images are reported with their L2 distance to the inputs, and
    `search` returns the rounds each generator needed as well.

    Args:
        warmup_steps: Adam steps on the MSE alone before the first round, so that the
            generator starts from a faithful copy of its image (a sigmoid needs many steps to
            reach the black background of MNIST).
        fit_steps: Adam steps of the MSE step per round.
        push_steps: Adam steps of the composite step per round.
        max_rounds: Rounds before giving up.
        lr: Adam's learning rate (Keras' default, 0.001, is slow here; 0.05 by default).
        seed: Seed of the initialisation's private generator; None uses torch's global one.

    Returns:
        As `Attack`: `(raw, clipped, success)` with clipped equal to raw; epsilons are ignored
        (give None). `search` returns a `SimpleGeneratorResult` (the images, their success and
        the rounds each took).

    References:
        Seed 001 (Machine Learning Homework 2), Exercise 2 (B)-(C); Szegedy, Zaremba,
        Sutskever, Bruna, Erhan, Goodfellow, Fergus 2014, "Intriguing properties of neural
        networks".
    """

    distance = l2
    result = SimpleGeneratorResult
    unbounded = True

    def __init__(
        self,
        *,
        warmup_steps: int = 200,
        fit_steps: int = 20,
        push_steps: int = 5,
        max_rounds: int = 50,
        lr: float = 0.05,
        seed: int | None = None,
    ) -> None:
        check_int("warmup_steps", warmup_steps, minimum=0)
        check_int("fit_steps", fit_steps, minimum=0)
        check_int("push_steps", push_steps)
        check_int("max_rounds", max_rounds)
        check_float("lr", lr, strict=True)
        check_int("seed", seed, minimum=0, optional=True)
        self.warmup_steps = warmup_steps
        self.fit_steps = fit_steps
        self.push_steps = push_steps
        self.max_rounds = max_rounds
        self.lr = lr
        self.seed = seed

    def _counted(
        self, model: nn.Module, inputs: torch.Tensor, criterion: Criterion
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The generators' last images and the rounds each ran, int64 (N,)."""
        classes, targeted = get_labels(criterion)
        low, high = get_bounds(model)
        x = inputs.detach()  # (N, C, H, W) in bounds
        n = x.shape[0]
        gen = generator_for(self.seed, x.device)
        limit = (6.0 / (1 + x[0].numel())) ** 0.5  # glorot uniform, fan_in 1, fan_out pixels
        w = (
            (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1) * limit
        ).requires_grad_(True)
        b = torch.zeros_like(x, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=self.lr)
        shape = (-1,) + (1,) * (x.ndim - 1)
        done = torch.zeros(n, dtype=torch.bool, device=x.device)
        rounds = torch.zeros(n, dtype=torch.int64, device=x.device)

        def image() -> torch.Tensor:
            return low + (high - low) * torch.sigmoid(w + b)

        def step(loss_fn: Any) -> None:
            keep_w, keep_b = w.detach().clone(), b.detach().clone()
            with torch.enable_grad():
                opt.zero_grad(set_to_none=True)
                loss_fn(image()).backward(inputs=[w, b])  # the model's .grad stay untouched
            opt.step()
            with torch.no_grad():  # finished generators do not move
                w.copy_(torch.where(done.view(shape), keep_w, w))
                b.copy_(torch.where(done.view(shape), keep_b, b))

        def fit(img: torch.Tensor) -> torch.Tensor:
            return (img - x).pow(2).flatten(1).mean(1).sum()

        def push(img: torch.Tensor) -> torch.Tensor:
            ce = F.cross_entropy(model(img), classes, reduction="sum")
            return ce if targeted else -ce

        with eval_mode(model):
            for _ in range(self.warmup_steps):
                step(fit)
            for _ in range(self.max_rounds):
                for _ in range(self.fit_steps):
                    step(fit)
                rounds += (~done).to(torch.int64)
                for _ in range(self.push_steps):
                    step(push)
                    with torch.no_grad():  # stop each generator at its first success
                        img = image()
                        done |= criterion(img, model(img))
                if bool(done.all()):
                    break
        return image().detach(), rounds
