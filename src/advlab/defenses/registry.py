"""The defence registry and its factory: `create_defense("pgd", epsilon=0.3)`.

A defence is built from keyword settings: an adversarial-example maker
``(model, x, y) -> x_adv`` (registered under the kind a `DefenseObjective` spec stores), the
training objective `DefenseObjective` for `advlab.train.fit`, or `APRConfig`, the settings that
`apr_model`, `apr_objective` and `fine_tune` take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from advlab.defenses.apr import APRConfig
from advlab.defenses.training import (
    DefenseObjective,
    FGSMRandomStart,
    OnePixelExamples,
    PGDExamples,
)
from advlab.registry import Registry, check_kwargs

DEFENSES: Registry[Callable[..., Any]] = Registry("defence")

DEFENSES.add(
    "fgsm-rs",
    FGSMRandomStart,
    "FGSM from a random start: training examples (Wong, Rice, Kolter 2020)",
)
DEFENSES.add(
    "pgd",
    PGDExamples,
    "Linf PGD from a random start: training examples (Madry et al. 2018)",
)
DEFENSES.add(
    "one-pixel",
    OnePixelExamples,
    "One-pixel differential evolution: training examples (APR's first part)",
)
DEFENSES.add(
    "adversarial-training",
    DefenseObjective,
    "Training objective: adversarial examples (attack=) and APR's regularisers",
)
DEFENSES.add(
    "apr",
    APRConfig,
    "Adaptive Pixel Resilience settings for apr_model, apr_objective, fine_tune",
)


def create_defense(name: str, **kwargs: Any) -> Any:
    """Builds the defence registered as `name` with keyword settings `kwargs`.

    Example: ``create_defense("adversarial-training", attack=create_defense("pgd",
    epsilon=0.3), adversarial_fraction=1.0)`` is the objective of PGD adversarial training.

    Raises:
        RegistryError: `name` is not registered.
        ConfigError: `kwargs` holds a setting the defence does not take, or lacks a required
            one (the message lists the accepted ones); or a setting's value is invalid.
    """
    factory = DEFENSES.get(name)
    check_kwargs("create_defense", name, factory, kwargs)
    return factory(**kwargs)
