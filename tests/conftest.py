"""Shared test setup: a cache shared by the xdist workers, and the real-data guard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from advlab.models import ModelWrapper

REPO = Path(__file__).resolve().parents[1]

# One array cache for the whole session (and across sessions), so that the real datasets are
# decoded once, not once per worker. Tests of the cache itself use their own folders.
os.environ.setdefault("ADVLAB_CACHE_DIR", str(REPO / ".test-cache"))
if "ADVLAB_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "data").is_dir():
    os.environ["ADVLAB_DATA_DIR"] = str(REPO.parent / "shared" / "data")


# The real data as the session started, before any test points ADVLAB_DATA_DIR elsewhere.
REAL_DATA_DIR = Path(os.environ.get("ADVLAB_DATA_DIR", "/nonexistent"))


def require_data(name: str) -> Path:
    """The real folder of dataset `name`; fails under CI (CI=true), skips elsewhere, if absent."""
    folder = REAL_DATA_DIR / name
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    msg = (
        f"real dataset {name!r} not found: set ADVLAB_DATA_DIR to a folder that holds it "
        f"(looked in {folder})"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture
def fresh_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An empty data dir and an empty cache dir, set as ADVLAB_DATA_DIR / ADVLAB_CACHE_DIR."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    cache.mkdir()
    monkeypatch.setenv("ADVLAB_DATA_DIR", str(data))
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(cache))
    return data, cache


@pytest.fixture(scope="session")
def digits() -> tuple[ModelWrapper, torch.Tensor, torch.Tensor]:
    """The attack tests' model: a trained digits MLP and its 397 held-out test images and labels."""
    bunch = load_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    torch.manual_seed(0)
    perm = torch.randperm(len(x))
    train, test = perm[:1400], perm[1400:]
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    model = ModelWrapper(net, mean=[0.3], std=[0.4])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(x[train]), y[train]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    return model, x[test], y[test]
