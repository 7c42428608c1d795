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
from advlab.attacks.carlini_wagner import CarliniWagnerL2
from advlab.attacks.criteria import Criterion, Misclassification, TargetedMisclassification
from advlab.attacks.distances import L0, L2, Distance, L0Pixels, LInf, l0, l0_pixels, l2, linf
from advlab.attacks.fooling import FoolingImage, FoolingImageResult
from advlab.attacks.generator import SimpleGenerator, SimpleGeneratorResult
from advlab.attacks.gradient import BIM, FGSM, L2PGD, LinfPGD, loss_gradient
from advlab.attacks.jsma import JSMA
from advlab.attacks.one_pixel import OnePixel, OnePixelResult
from advlab.attacks.registry import ATTACKS, create_attack
from advlab.attacks.sparse_rs import SparseRS, SparseRSResult

__all__ = [
    "ATTACKS",
    "BIM",
    "FGSM",
    "JSMA",
    "L0",
    "L2",
    "L2PGD",
    "Attack",
    "CarliniWagnerL2",
    "Criterion",
    "Distance",
    "FixedEpsilonAttack",
    "FoolingImage",
    "FoolingImageResult",
    "L0Pixels",
    "LInf",
    "LinfPGD",
    "MinimizationAttack",
    "Misclassification",
    "OnePixel",
    "OnePixelResult",
    "SimpleGenerator",
    "SimpleGeneratorResult",
    "SparseRS",
    "SparseRSResult",
    "TargetedMisclassification",
    "create_attack",
    "get_criterion",
    "get_labels",
    "l0",
    "l0_pixels",
    "l2",
    "linf",
    "loss_gradient",
]
