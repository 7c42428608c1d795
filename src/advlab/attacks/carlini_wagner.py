"""Carlini & Wagner's L2 attack: a change of variables, a margin loss, a search over its weight."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advlab.attacks.base import (
    MinimizationAttack,
    check_float,
    check_int,
    get_bounds,
    get_labels,
    raise_if_kwargs,
)
from advlab.attacks.criteria import Criterion
from advlab.attacks.distances import l2
from advlab.attacks.registry import ATTACKS
from advlab.models.wrapper import eval_mode


def margin(logits: torch.Tensor, classes: torch.Tensor, targeted: bool) -> torch.Tensor:
    """C&W's f before clamping, (N,): how far the sample is from the goal (<= 0 once reached).

    Untargeted: `Z_label - max_{i != label} Z_i`; targeted: `max_{i != target} Z_i - Z_target`.
    """
    own = logits.gather(1, classes[:, None]).squeeze(1)
    others = logits.scatter(1, classes[:, None], float("-inf")).amax(dim=1)
    return others - own if targeted else own - others


@ATTACKS.register("cw", help="Carlini & Wagner L2 attack with a binary search over c (2017)")
class CarliniWagnerL2(MinimizationAttack):
    """Carlini & Wagner's L2 attack: the smallest L2 perturbation that reaches the criterion.

    Optimises `w` with `x' = low + (high - low) * (tanh(w) + 1) / 2`, so `x'` always lies in
    the bounds, minimising `||x' - x||_2^2 + c * max(margin(x'), -confidence)` with Adam, for
    every sample at once. A binary search over `c` per sample (starting at `initial_const`,
    multiplied by 10 while no adversarial is found, then bisected) repeats the optimisation
    `binary_search_steps` times; with `abort_early`, an optimisation stops once its loss has
    not improved by 0.01% over a tenth of its steps. The result is, per sample, the
    adversarial of smallest L2 norm found at any step (the input itself where none was).
    With `binary_search_steps=1` and `initial_const=c` this is torchattacks' `CW(c=c)`.
    Pixels on a bound start deep in tanh's saturation (atanh(0.999999) = 7.25), so images
    with many of them (MNIST) need hundreds of steps, targeted attacks most of all.

    Args:
        binary_search_steps: Number of optimisations, each with its own `c` per sample.
        steps: Adam steps per optimisation.
        stepsize: Adam's learning rate (in tanh space).
        confidence: Margin (kappa) the adversarial must clear in logits.
        initial_const: First value of `c`.
        abort_early: Stop an optimisation whose loss has stopped improving.

    Returns:
        As `Attack`: raw is the smallest adversarial found per sample; clipped is it projected
        onto each epsilon's L2 ball.

    References:
        Carlini, Wagner 2017, "Towards Evaluating the Robustness of Neural Networks".
    """

    distance = l2

    def __init__(
        self,
        *,
        binary_search_steps: int = 5,
        steps: int = 200,
        stepsize: float = 0.01,
        confidence: float = 0.0,
        initial_const: float = 1e-2,
        abort_early: bool = True,
    ) -> None:
        check_int("binary_search_steps", binary_search_steps)
        check_int("steps", steps)
        check_float("stepsize", stepsize, strict=True)
        check_float("confidence", confidence)
        check_float("initial_const", initial_const, strict=True)
        self.binary_search_steps = binary_search_steps
        self.steps = steps
        self.stepsize = stepsize
        self.confidence = confidence
        self.initial_const = initial_const
        self.abort_early = abort_early

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
        classes, targeted = get_labels(criterion)
        low, high = get_bounds(model)
        x = inputs.detach()  # (N, C, H, W) in bounds
        n = x.shape[0]

        def to_pixels(w: torch.Tensor) -> torch.Tensor:
            return low + (high - low) * (torch.tanh(w) + 1) / 2

        # atanh of the inputs, pulled slightly inside (-1, 1) so pixels on the bounds stay finite.
        w0 = torch.atanh(((x - low) / (high - low) * 2 - 1) * (1 - 1e-6))
        const = torch.full((n,), self.initial_const, device=x.device, dtype=x.dtype)
        lower = torch.zeros_like(const)
        upper = torch.full_like(const, float("inf"))
        best = x.clone()
        best_norm = torch.full_like(const, float("inf"))
        check_every = max(1, self.steps // 10)
        with eval_mode(model):
            for _ in range(self.binary_search_steps):
                delta = torch.zeros_like(w0, requires_grad=True)
                opt = torch.optim.Adam([delta], lr=self.stepsize)
                found = torch.zeros(n, dtype=torch.bool, device=x.device)
                previous = float("inf")
                for step in range(self.steps):
                    with torch.enable_grad():
                        adv = to_pixels(w0 + delta)
                        logits = model(adv)
                        norm_sq = (adv - x).flatten(1).pow(2).sum(dim=1)
                        m = margin(logits, classes, targeted)
                        loss = (norm_sq + const * (m + self.confidence).clamp_min(0)).sum()
                        opt.zero_grad(set_to_none=True)
                        loss.backward(inputs=[delta])  # parameter .grad fields stay untouched
                    with torch.no_grad():
                        adv_d, logits_d = adv.detach(), logits.detach()
                        is_adv = criterion(adv_d, logits_d) & (m.detach() <= -self.confidence)
                        norm = norm_sq.detach().sqrt()
                        better = is_adv & (norm < best_norm)
                        best = torch.where(better.view(-1, 1, 1, 1), adv_d, best)
                        best_norm = torch.where(better, norm, best_norm)
                        found |= is_adv
                    opt.step()
                    if self.abort_early and (step + 1) % check_every == 0:
                        value = float(loss.detach())
                        if value > previous * 0.9999:
                            break
                        previous = value
                upper = torch.where(found, torch.minimum(upper, const), upper)
                lower = torch.where(found, lower, torch.maximum(lower, const))
                const = torch.where(torch.isinf(upper), const * 10, (lower + upper) / 2)
        return best
