"""Criteria: what counts as adversarial, decided per sample from the model's logits."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from advlab.errors import AttackError


def check_classes(
    classes: object, *, name: str, num_samples: int, num_classes: int, device: torch.device
) -> None:
    """Raises AttackError unless `classes` is an int64 (num_samples,) tensor in [0, num_classes)."""
    expected = f"an int64 tensor of shape ({num_samples},) with values in [0, {num_classes})"
    if not isinstance(classes, torch.Tensor):
        raise AttackError(f"{name}: expected {expected}, found {type(classes).__name__}")
    if classes.dtype != torch.int64:
        raise AttackError(f"{name}: expected {expected}, found dtype {classes.dtype}")
    if tuple(classes.shape) != (num_samples,):
        raise AttackError(f"{name}: expected {expected}, found shape {tuple(classes.shape)}")
    if classes.device != device:
        raise AttackError(
            f"{name}: expected on device {device} (the inputs'), found {classes.device}"
        )
    low, high = int(classes.min()), int(classes.max())
    if low < 0 or high >= num_classes:
        raise AttackError(f"{name}: expected {expected}, found values in [{low}, {high}]")


class Criterion(ABC):
    """Decides which perturbed inputs are adversarial.

    Args:
        None in the base class; subclasses take the reference or target classes.

    Returns:
        Calling a criterion with `(perturbed, logits)`, (N, C, H, W) and (N, num_classes),
        returns a bool tensor (N,), True where the sample is adversarial.

    References:
        Rauber, Zimmermann, Bethge, Brendel 2020, "Foolbox Native: Fast adversarial attacks to
        benchmark the robustness of machine learning models in PyTorch, TensorFlow, and JAX".
    """

    @abstractmethod
    def __call__(self, perturbed: torch.Tensor, logits: torch.Tensor) -> torch.Tensor: ...

    def validate(self, *, num_samples: int, num_classes: int, device: torch.device) -> None:
        """Raises AttackError when the criterion does not fit a batch; no checks by default."""
        return None

    def __and__(self, other: Criterion) -> Criterion:
        return _And(self, other)


class _And(Criterion):
    """Adversarial where both criteria say so."""

    def __init__(self, a: Criterion, b: Criterion) -> None:
        self.a = a
        self.b = b

    def __call__(self, perturbed: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.a(perturbed, logits) & self.b(perturbed, logits)

    def validate(self, *, num_samples: int, num_classes: int, device: torch.device) -> None:
        self.a.validate(num_samples=num_samples, num_classes=num_classes, device=device)
        self.b.validate(num_samples=num_samples, num_classes=num_classes, device=device)

    def __repr__(self) -> str:
        return f"{self.a!r} & {self.b!r}"


class Misclassification(Criterion):
    """Adversarial where the top-1 class differs from the true label (untargeted attack).

    Args:
        labels: True classes, int64 tensor (N,) on the inputs' device.

    Returns:
        Calling it returns `logits.argmax(1) != labels`, a bool tensor (N,).

    References:
        Szegedy, Zaremba, Sutskever, Bruna, Erhan, Goodfellow, Fergus 2014,
        "Intriguing properties of neural networks".
    """

    def __init__(self, labels: torch.Tensor) -> None:
        self.labels = labels

    def __call__(self, perturbed: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) != self.labels

    def validate(self, *, num_samples: int, num_classes: int, device: torch.device) -> None:
        check_classes(
            self.labels,
            name="labels",
            num_samples=num_samples,
            num_classes=num_classes,
            device=device,
        )

    def __repr__(self) -> str:
        return f"Misclassification(labels=<{len(self.labels)} labels>)"


class TargetedMisclassification(Criterion):
    """Adversarial where the top-1 class is the requested target class (targeted attack).

    Args:
        target_classes: Wanted classes, int64 tensor (N,) on the inputs' device.

    Returns:
        Calling it returns `logits.argmax(1) == target_classes`, a bool tensor (N,).

    References:
        Szegedy, Zaremba, Sutskever, Bruna, Erhan, Goodfellow, Fergus 2014,
        "Intriguing properties of neural networks".
    """

    def __init__(self, target_classes: torch.Tensor) -> None:
        self.target_classes = target_classes

    def __call__(self, perturbed: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) == self.target_classes

    def validate(self, *, num_samples: int, num_classes: int, device: torch.device) -> None:
        check_classes(
            self.target_classes,
            name="target_classes",
            num_samples=num_samples,
            num_classes=num_classes,
            device=device,
        )

    def __repr__(self) -> str:
        return f"TargetedMisclassification(target_classes=<{len(self.target_classes)} classes>)"
