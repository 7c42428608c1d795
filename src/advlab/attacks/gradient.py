"""Gradient-sign attacks and the loss gradient that iterative attacks build on."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advlab.attacks.base import FixedEpsilonAttack, get_bounds, get_labels, raise_if_kwargs
from advlab.attacks.criteria import Criterion
from advlab.attacks.distances import linf
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
        batch_size: Samples per forward/backward pass; None for the whole batch at once.

    Returns:
        The gradient, same shape and dtype as `x`.
    """
    chunk = batch_size or max(x.shape[0], 1)
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
        batch_size: Samples per forward/backward pass, to bound memory; None for all at once.

    Returns:
        As `Attack`: `(raw, clipped, success)`; raw is already within the Linf ball, so clipped
        equals raw.

    References:
        Goodfellow, Shlens, Szegedy 2015, "Explaining and Harnessing Adversarial Examples".
    """

    distance = linf

    def __init__(self, *, batch_size: int | None = None) -> None:
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ConfigError(f"batch_size: expected None or an int >= 1, found {batch_size!r}")
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
        labels, targeted = get_labels(criterion)
        low, high = get_bounds(model)
        x = inputs.detach()  # (N, C, H, W) in bounds
        with eval_mode(model):
            grad = loss_gradient(model, x, labels, targeted, batch_size=self.batch_size)
        return (x + epsilon * grad.sign()).clamp(low, high)
