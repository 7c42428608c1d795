"""Honest robustness evaluation: the worst case over random restarts, image by image."""

from __future__ import annotations

import torch
from torch import nn

from advlab.attacks import LinfPGD


def pgd_restarts(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epsilon: float,
    steps: int = 100,
    restarts: int = 10,
    rel_stepsize: float = 2.5 / 100,
    seed: int = 0,
    image_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L-inf PGD with `restarts` random starts: an image counts as broken if any start breaks it.

    Restart r uses the seed ``seed + r`` and attacks only the images no earlier restart broke
    (those already broken keep their adversarial), so the first restart alone is exactly
    ``LinfPGD(steps, rel_stepsize, random_start=True, seed=seed)``. With `image_ids` (int64
    (N,), the images' indices in a whole evaluation) every image's starts come from its own
    streams, so a chunk of the evaluation gives each of its images the whole run's result.

    Returns:
        (fooled (N,) bool: misclassified after the attack, correct or not before; the
        adversarial images (N, C, H, W), the last restart's for images never broken).
    """
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    adversarial = x.clone()
    for r in range(restarts):
        todo = torch.nonzero(~fooled).flatten()
        if len(todo) == 0:
            break
        attack = LinfPGD(steps=steps, rel_stepsize=rel_stepsize, random_start=True, seed=seed + r)
        extra = {} if image_ids is None else {"image_ids": image_ids[todo]}
        _, clipped, success = attack(model, x[todo], y[todo], epsilons=[epsilon], **extra)
        adversarial[todo] = clipped[0]
        fooled[todo] = success[0]
    return fooled, adversarial
