"""Adversarial attacks in pixel space: criteria, distances, attack base classes and attacks.

Every attack is registered in `ATTACKS`; build one with `create_attack(name, **params)`.
"""

from advlab.attacks.base import (
    Attack,
    FixedEpsilonAttack,
    MinimizationAttack,
    get_criterion,
    get_labels,
)
from advlab.attacks.criteria import Criterion, Misclassification, TargetedMisclassification
from advlab.attacks.distances import L0, L2, Distance, LInf, l0, l2, linf
from advlab.attacks.gradient import FGSM, loss_gradient
from advlab.attacks.registry import ATTACKS, create_attack

__all__ = [
    "ATTACKS",
    "FGSM",
    "L0",
    "L2",
    "Attack",
    "Criterion",
    "Distance",
    "FixedEpsilonAttack",
    "LInf",
    "MinimizationAttack",
    "Misclassification",
    "TargetedMisclassification",
    "create_attack",
    "get_criterion",
    "get_labels",
    "l0",
    "l2",
    "linf",
    "loss_gradient",
]
