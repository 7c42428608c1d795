"""Training objectives for defences: adversarial training and APR's regularisers.

Each objective is called by `advlab.train.fit(..., objective=...)` on every batch as
``objective(model, inputs, labels) -> (loss, logits)``, with the model in train mode; the
adversarial examples are made by advlab's own attacks from the current model (refreshed every
batch), in eval mode so that batch-norm statistics are not fitted to the attack's probes.

Adaptive Pixel Resilience (Srivastava & Muskaan 2024) combines three parts, each switchable:

1. adversarial training: a fraction `adversarial_fraction` of every batch is replaced by
   adversarial versions of the same images (one-pixel examples from `OnePixelExamples`, or the
   gradient attacks `FGSMRandomStart` / `PGDExamples` for the L-inf defences);
2. the pixel-wise attention layer (`advlab.defenses.attention`), a change of the model, not of
   the loss;
3. regularisation, with the terms and weights stated here because the paper's full text was not
   at hand:

   - `gradient_weight` x the *pixel sensitivity*: for every image, the per-pixel L1 norm
     (summed over channels) of the gradient of its cross-entropy with respect to the input
     pixels, averaged over its `gradient_top_k` largest pixels, then over the batch. Changing one
     pixel by at most 1 per channel changes the loss by at most that norm to first order, so
     the term penalises exactly the reliance on single pixels a one-pixel attack exploits
     (double backpropagation, Drucker & LeCun 1992; Ross & Doshi-Velez 2018 penalise the L2
     norm of the whole input gradient instead).
   - `attention_weight` x the mean closed fraction ``1 - a`` of the attention map: without it
     the gate may close large areas and lose clean accuracy; with it, closing a pixel has to pay
     for itself in the loss.

The loss is ``CE + gradient_weight * sensitivity + attention_weight * mean(1 - a)`` over the
mixed batch. With train-mode batch norm the per-image input gradients are those of the summed
loss, which also carry the (small) coupling between images through the batch statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from advlab.attacks import LinfPGD, Misclassification, OnePixel
from advlab.defenses.attention import attention_layer, logits_and_gate
from advlab.errors import ConfigError
from advlab.validation import check_fraction, check_number


@dataclass(frozen=True)
class FGSMRandomStart:
    """'Fast' adversarial examples (Wong, Rice, Kolter 2020): a uniform random start in the
    L-inf ball of `epsilon`, then one signed-gradient step of `alpha * epsilon`, projected.

    Called as ``(model, x, y) -> x_adv`` on pixels in the model's bounds.
    """

    epsilon: float
    alpha: float = 1.25

    def __post_init__(self) -> None:
        check_number("epsilon", self.epsilon, minimum=0)
        if not self.alpha > 0:
            raise ConfigError(f"alpha: expected a number > 0, found {self.alpha!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attack = LinfPGD(steps=1, rel_stepsize=self.alpha, random_start=True)
        return attack.run(model, x, Misclassification(y), epsilon=self.epsilon).detach()


@dataclass(frozen=True)
class PGDExamples:
    """PGD adversarial examples (Madry et al. 2018): `steps` signed-gradient steps of
    `rel_stepsize * epsilon` from a uniform random start in the L-inf ball, projected."""

    epsilon: float
    steps: int = 7
    rel_stepsize: float = 2.5 / 7

    def __post_init__(self) -> None:
        check_number("epsilon", self.epsilon, minimum=0)
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps: expected an int >= 1, found {self.steps!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attack = LinfPGD(steps=self.steps, rel_stepsize=self.rel_stepsize, random_start=True)
        return attack.run(model, x, Misclassification(y), epsilon=self.epsilon).detach()


@dataclass(frozen=True)
class OnePixelExamples:
    """One-pixel adversarial examples from advlab's batched differential evolution: the
    fittest candidate each image's search found (adversarial or not: the strongest `pixels`
    -pixel change it knows). Each call draws the images' random streams from torch's global
    generator, so a new batch gets new searches and a resumed training run the same ones."""

    pixels: int = 1
    population: int = 40
    generations: int = 5

    def __post_init__(self) -> None:
        for name, value, low in (
            ("pixels", self.pixels, 1),
            ("population", self.population, 4),
            ("generations", self.generations, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{name}: expected an int >= {low}, found {value!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        attack = OnePixel(
            population=self.population,
            max_generations=self.generations,
            stop="misclassified",
            seed=0,
        )
        ids = torch.randint(0, 2**62, (len(x),), device=x.device)
        return attack.search(model, x, y, pixels=self.pixels, image_ids=ids).adversarials


def pixel_sensitivity(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, top_k: int = 1, create_graph: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean of the `top_k` largest per-pixel L1 input-gradient norms of the
    cross-entropy, and the logits: ((N,), (N, K)). Differentiable with `create_graph`."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k: expected an int >= 1, found {top_k!r}")
    x = x.detach().requires_grad_(True)
    logits = model(x)
    return _sensitivity(logits, x, y, top_k, create_graph), logits


def _sensitivity(
    logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, top_k: int, create_graph: bool
) -> torch.Tensor:
    """`pixel_sensitivity` (N,) from `logits` computed on `x`, which requires grad."""
    wide = logits.to(torch.promote_types(logits.dtype, torch.float32))  # not in half precision
    loss = F.cross_entropy(wide, y, reduction="sum")  # per-image gradients
    (grad,) = torch.autograd.grad(loss, x, create_graph=create_graph)
    per_pixel = grad.abs().sum(1).flatten(1)  # (N, H * W)
    k = min(top_k, per_pixel.shape[1])
    return per_pixel.topk(k, dim=1).values.mean(1)


@dataclass(frozen=True)
class DefenseObjective:
    """Adversarial training with APR's regularisers; every part off by default (plain CE).

    Args:
        attack: Makes adversarial examples, ``(model, x, y) -> x_adv`` (e.g.
            `OnePixelExamples`, `FGSMRandomStart`), or None for no adversarial training.
        adversarial_fraction: Share of each batch replaced by its adversarial version (the
            first images of the shuffled batch); 1 trains on adversarials only.
        gradient_weight: Weight of the pixel sensitivity (module docstring); 0 for none.
        gradient_top_k: Pixels per image the sensitivity averages over.
        attention_weight: Weight of the attention map's mean closed fraction; needs a
            `PixelAttention` layer first in the model's network when > 0 (as
            `with_pixel_attention` puts it), whose map `logits_and_gate` returns with the
            logits of the same forward pass.
        label_smoothing: Of the cross-entropy.
    """

    attack: object | None = None
    adversarial_fraction: float = 0.5
    gradient_weight: float = 0.0
    gradient_top_k: int = 1
    attention_weight: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if self.attack is not None and not callable(self.attack):
            raise ConfigError(
                f"attack: expected a callable (model, x, y) -> x_adv or None, found {self.attack!r}"
            )
        check_fraction("adversarial_fraction", self.adversarial_fraction)
        check_number("gradient_weight", self.gradient_weight, minimum=0)
        check_number("attention_weight", self.attention_weight, minimum=0)
        check_fraction("label_smoothing", self.label_smoothing)
        if not isinstance(self.gradient_top_k, int) or self.gradient_top_k < 1:
            raise ConfigError(
                f"gradient_top_k: expected an int >= 1, found {self.gradient_top_k!r}"
            )

    def spec(self) -> dict[str, Any]:
        """A JSON description (for `ModelRecipe.objective` and reports); `from_spec` inverts it."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "attack"}
        if self.attack is not None:
            kind = next((k for k, cls in EXAMPLES.items() if type(self.attack) is cls), None)
            if kind is None:
                raise ConfigError(
                    f"attack: {type(self.attack).__name__} has no spec; use one "
                    f"of {sorted(EXAMPLES)}"
                )
            out["attack"] = {"kind": kind, **asdict(self.attack)}  # type: ignore[call-overload]
        return out

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> DefenseObjective:
        """The objective `spec()` described."""
        values = dict(spec)
        attack = values.pop("attack", None)
        if attack is not None:
            attack = dict(attack)
            kind = attack.pop("kind", None)
            if kind not in EXAMPLES:
                raise ConfigError(
                    f"attack kind: expected one of {sorted(EXAMPLES)}, found {kind!r}"
                )
            attack = EXAMPLES[kind](**attack)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"objective spec: unknown keys {unknown}; expected {sorted(known)}")
        return cls(attack=attack, **values)

    def mix(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch with its first `adversarial_fraction` replaced by adversarial versions."""
        n_adv = round(self.adversarial_fraction * len(x)) if self.attack is not None else 0
        if n_adv == 0:
            return x
        make = self.attack
        assert callable(make)
        with torch.autocast(x.device.type, enabled=False):  # attacks run in float32
            x_adv = make(model, x[:n_adv].float(), y[:n_adv]).to(x.dtype)
        return torch.cat([x_adv.detach(), x[n_adv:]])

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.mix(model, x, y)
        if self.attention_weight > 0 and attention_layer(model) is None:
            raise ConfigError(
                "attention_weight > 0: the model has no PixelAttention layer "
                "(use advlab.defenses.with_pixel_attention)"
            )
        if self.gradient_weight > 0:
            x = x.detach().requires_grad_(True)
        gate = None
        if self.attention_weight > 0:  # the gate of this very forward pass, for its term
            logits, gate = logits_and_gate(model, x)
        else:
            logits = model(x)
        if self.gradient_weight > 0:
            sensitivity = _sensitivity(logits, x, y, self.gradient_top_k, True)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        if self.gradient_weight > 0:
            loss = loss + self.gradient_weight * sensitivity.mean()
        if gate is not None:
            loss = loss + self.attention_weight * (1.0 - gate).mean()
        return loss, logits


# Adversarial-example makers by the name their spec carries.
EXAMPLES: dict[str, type] = {
    "fgsm-rs": FGSMRandomStart,
    "pgd": PGDExamples,
    "one-pixel": OnePixelExamples,
}
