"""Training objectives beyond plain cross-entropy that a stored recipe can describe.

`class_weights` turns class counts into loss weights (``inverse``: N / (K n_c), every class
weighing as much in total; ``sqrt``: the square root of that, a milder correction); and
`WeightedCrossEntropy` is the trainer objective that uses them, with its JSON `spec` for
`ModelRecipe.objective`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from torch.nn import functional as F

from advlab.errors import ConfigError

WEIGHTINGS = ("none", "sqrt", "inverse")


def class_weights(labels: npt.ArrayLike, num_classes: int, scheme: str = "sqrt") -> list[float]:
    """Per-class loss weights from the training labels, averaging 1 over the examples.

    Raises:
        ConfigError: An unknown scheme, or a class with no example.
    """
    if scheme not in WEIGHTINGS:
        raise ConfigError(f"class_weighting: expected one of {list(WEIGHTINGS)}, found {scheme!r}")
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    if scheme == "none":
        return [1.0] * num_classes
    if (counts == 0).any():
        raise ConfigError(
            f"class_weighting: classes {np.flatnonzero(counts == 0).tolist()} have "
            "no training example"
        )
    w = counts.sum() / (num_classes * counts)
    if scheme == "sqrt":
        w = np.sqrt(w)
    w = w / (w * counts).sum() * counts.sum()  # the mean weight over the examples is 1
    return [float(v) for v in w]


@dataclass(frozen=True)
class WeightedCrossEntropy:
    """Cross-entropy with per-class weights (and label smoothing), as a `fit` objective."""

    weights: tuple[float, ...]
    label_smoothing: float = 0.0

    def spec(self) -> dict[str, object]:
        """The JSON description for `ModelRecipe.objective`."""
        return {
            "loss": "weighted_cross_entropy",
            "weights": [round(w, 6) for w in self.weights],
            "label_smoothing": self.label_smoothing,
        }

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        w = torch.tensor(self.weights, dtype=logits.dtype, device=logits.device)
        loss = F.cross_entropy(logits, y, weight=w, label_smoothing=self.label_smoothing)
        return loss, logits


__all__ = ["WEIGHTINGS", "WeightedCrossEntropy", "class_weights"]
