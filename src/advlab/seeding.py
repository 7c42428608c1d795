"""Seeding in one place: every run calls `seed_everything` once, before anything random."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int, *, deterministic: bool = True) -> np.random.Generator:
    """Seed Python, numpy and torch; on CPU, the same seed gives the same numbers.

    Returns a numpy Generator seeded with `seed` for the caller's own draws.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return np.random.default_rng(seed)
