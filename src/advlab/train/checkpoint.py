"""Checkpoints: state dicts plus the config, written atomically, read with weights_only=True."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from advlab.errors import RunError
from advlab.fileio import atomic_path


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write `state` (tensors, numbers, strings, dicts, lists) to `path` atomically."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without running code from it (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no checkpoint there")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as exc:
        raise RunError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise RunError(f"{path}: expected a dict checkpoint, found {type(state).__name__}")
    return state
