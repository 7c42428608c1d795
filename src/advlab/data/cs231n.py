"""CIFAR-10 as the CS231n assignments prepare it, for the numpy networks of seed 003."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advlab.data.registry import load_dataset
from advlab.errors import ConfigError


@dataclass(frozen=True)
class CenteredCIFAR:
    """The splits, float32 (N, 3072) in channels-last order, and how pixels became features:
    ``features = (pixels / 255 - mean) / scale``, both (3072,)."""

    splits: dict[str, tuple[np.ndarray, np.ndarray]]
    mean: np.ndarray
    scale: np.ndarray


def cs231n_cifar10(
    n_train: int = 49000, n_val: int = 1000, n_test: int | None = None, standardize: bool = False
) -> CenteredCIFAR:
    """CIFAR-10 split and centred as CS231n does: float32 (N, 3072), mean training image off;
    with `standardize`, each pixel is also divided by its training standard deviation."""
    train, test = load_dataset("cifar10", "train"), load_dataset("cifar10", "test")
    if n_train + n_val > len(train):
        raise ConfigError(
            f"n_train + n_val: expected at most {len(train)}, found {n_train + n_val}"
        )
    images = np.asarray(train.images)
    x = images[: n_train + n_val].reshape(n_train + n_val, -1).astype(np.float32) / 255.0
    y = np.asarray(train.labels)[: n_train + n_val]
    mean = x[:n_train].mean(0)
    x -= mean
    scale = x[:n_train].std(0) if standardize else np.float32(1.0)
    x /= scale
    nt = len(test) if n_test is None else min(n_test, len(test))
    xt = (np.asarray(test.images)[:nt].reshape(nt, -1).astype(np.float32) / 255.0 - mean) / scale
    splits = {
        "train": (x[:n_train], y[:n_train]),
        "val": (x[n_train:], y[n_train:]),
        "test": (xt, np.asarray(test.labels)[:nt]),
    }
    return CenteredCIFAR(splits, mean, np.broadcast_to(np.float32(scale), mean.shape).copy())
