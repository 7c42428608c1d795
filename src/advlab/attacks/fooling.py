"""The "fooling image" of CS231n (seed 003, section 4): normalised gradient ascent on a class
score, stopped at the first success."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from advlab.attacks.base import (
    CountedSearch,
    MinimizationAttack,
    check_float,
    check_int,
    get_bounds,
    get_labels,
)
from advlab.attacks.criteria import Criterion
from advlab.attacks.distances import l2
from advlab.attacks.registry import ATTACKS
from advlab.models.wrapper import eval_mode


@dataclasses.dataclass(frozen=True)
class FoolingImageResult:
    """What the ascent found, per image.

    Attributes:
        adversarials: The returned images (N, C, H, W): the first adversarial on each image's
            ascent path, or where the ascent ended after `max_steps` without one.
        success: Whether the criterion calls the returned image adversarial, bool (N,) (the
            `success` that calling the attack returns).
        steps: Steps each image took, int64 (N,): 0 for an input that was adversarial already.
    """

    adversarials: torch.Tensor
    success: torch.Tensor
    steps: torch.Tensor


@ATTACKS.register("fooling", help="Fooling image: L2-normalised ascent on a class score (CS231n)")
class FoolingImage(CountedSearch[FoolingImageResult], MinimizationAttack):
    """Gradient ascent on the input until the model is fooled, one image at a time in a batch.

    Each step moves every image not yet adversarial by `stepsize` along the L2-normalised
    gradient of the target class's score (targeted) or of minus the true class's score
    (untargeted), then clips to the bounds; an image stops at the first step that makes it
    adversarial, so the result is the first adversarial on the ascent path, not the end of a
    fixed budget. Images still not adversarial after `max_steps` come back as they are.
    `search` returns the steps each image took as well, for reports.

    Args:
        stepsize: L2 length of each step in pixel units (0.1 on [0, 1] is 25.5 on 0-255).
        max_steps: Steps before giving up (CS231n: 100).

    Returns:
        As `Attack`: raw is the first adversarial found per sample; clipped is it projected
        onto each epsilon's L2 ball. `search` returns a `FoolingImageResult` (the images,
        their success and the steps each took).

    References:
        Szegedy, Zaremba, Sutskever, Bruna, Erhan, Goodfellow, Fergus 2014, "Intriguing
        properties of neural networks"; CS231n (Stanford), assignment "Network Visualization:
        fooling images".
    """

    distance = l2
    result = FoolingImageResult

    def __init__(self, *, stepsize: float = 0.1, max_steps: int = 100) -> None:
        check_float("stepsize", stepsize, strict=True)
        check_int("max_steps", max_steps)
        self.stepsize = stepsize
        self.max_steps = max_steps

    def _counted(
        self, model: nn.Module, inputs: torch.Tensor, criterion: Criterion
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The images the ascent ends at and the steps each took, int64 (N,)."""
        classes, targeted = get_labels(criterion)
        low, high = get_bounds(model)
        x = inputs.detach().clone()  # (N, C, H, W) in bounds
        steps = torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
        shape = (-1,) + (1,) * (x.ndim - 1)
        with eval_mode(model):
            for _ in range(self.max_steps):
                xg = x.clone().requires_grad_(True)
                with torch.enable_grad():
                    logits = model(xg)
                    score = logits.gather(1, classes[:, None]).sum()
                    (grad,) = torch.autograd.grad(score if targeted else -score, xg)
                todo = ~criterion(x, logits.detach())
                if not bool(todo.any()):
                    break
                norm = torch.linalg.vector_norm(grad.flatten(1), dim=1).clamp_min(1e-12)
                moved = (x + self.stepsize * grad / norm.view(shape)).clamp(low, high)
                x = torch.where(todo.view(shape), moved, x)
                steps += todo.to(torch.int64)
        return x, steps
