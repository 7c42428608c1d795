"""Adaptive Pixel Resilience (Srivastava & Muskaan 2024): the three parts, each switchable.

`apr_model` adds the pixel-wise attention gate to (a copy of) a trained classifier;
`apr_objective` is its training loss (one-pixel adversarial training refreshed every batch,
plus the regularisers of `advlab.defenses.training`); `fine_tune` trains the two together from
the classifier's weights, as the lab's hint suggests (modify the loaded ResNet-18, do not
build a new network). The paper's exact loss terms and weights were not at hand; the choices
are those stated in `advlab.defenses.training` and in `APRConfig`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from advlab.defenses.attention import with_pixel_attention
from advlab.defenses.training import DefenseObjective, OnePixelExamples
from advlab.errors import ConfigError
from advlab.models import ModelWrapper
from advlab.train import History, TrainConfig, fit


@dataclass(frozen=True)
class APRConfig:
    """Which parts of APR are on, and their settings (defaults: all three on, CPU budget).

    Args:
        attention: Insert the pixel-wise attention gate in front of the network.
        adversarial: Train on one-pixel adversarial examples of the current model.
        regularisation: Add the pixel-sensitivity and attention-openness terms.
        adversarial_fraction: Share of each batch replaced by its one-pixel adversarial.
        pixels: d of the training examples.
        population: Differential-evolution population of the training examples (the
            attack's evaluation budget is separate: 400 in the experiments).
        generations: Generations of the training examples.
        gradient_weight: Weight of the largest per-pixel input-gradient norms.
        gradient_top_k: Pixels per image those norms are averaged over.
        attention_weight: Weight of the attention map's closed fraction (attention only).
        hidden: Channels of the attention branch.
    """

    attention: bool = True
    adversarial: bool = True
    regularisation: bool = True
    adversarial_fraction: float = 0.25
    pixels: int = 1
    population: int = 40
    generations: int = 5
    gradient_weight: float = 0.05
    gradient_top_k: int = 4
    attention_weight: float = 0.01
    hidden: int = 16

    def __post_init__(self) -> None:
        for name in ("attention", "adversarial", "regularisation"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: expected true or false, found {getattr(self, name)!r}")

    def parts(self) -> str:
        """The parts that are on, for tables: e.g. 'attention + adversarial'."""
        on = [n for n in ("attention", "adversarial", "regularisation") if getattr(self, n)]
        return " + ".join(on) if on else "none (plain fine-tuning)"


def apr_objective(cfg: APRConfig) -> DefenseObjective:
    """APR's training loss for `cfg` (plain cross-entropy with every part off)."""
    attack = (
        OnePixelExamples(cfg.pixels, cfg.population, cfg.generations) if cfg.adversarial else None
    )
    reg = cfg.regularisation
    return DefenseObjective(
        attack,
        adversarial_fraction=cfg.adversarial_fraction,
        gradient_weight=cfg.gradient_weight if reg else 0.0,
        gradient_top_k=cfg.gradient_top_k,
        attention_weight=cfg.attention_weight if reg and cfg.attention else 0.0,
    )


def apr_model(base: ModelWrapper, cfg: APRConfig) -> ModelWrapper:
    """A deep copy of `base`, with the attention gate in front when `cfg.attention`."""
    model = copy.deepcopy(base)
    return with_pixel_attention(model, hidden=cfg.hidden) if cfg.attention else model


def fine_tune(
    base: ModelWrapper,
    train: tuple[torch.Tensor, torch.Tensor],
    cfg: APRConfig,
    train_cfg: TrainConfig,
    *,
    checkpoint: Path | None = None,
    progress: bool | None = None,
) -> tuple[ModelWrapper, History]:
    """Fine-tune an APR model from `base`'s weights on `train` = (images, labels).

    `base` is not changed. With `checkpoint`, an interrupted fine-tuning continues exactly.
    """
    model = apr_model(base, cfg)
    history = fit(
        model,
        train,
        train_cfg,
        objective=apr_objective(cfg),
        checkpoint=checkpoint,
        progress=progress,
    )
    return model.eval(), history
