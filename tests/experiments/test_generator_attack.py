"""`generator-mnist` end to end on the embedded MNIST sample, at tiny size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advlab.experiments import run_experiment


def test_generator_mnist_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path / "cache"))  # a model store of its own
    run = run_experiment(
        "generator-mnist",
        ["dataset=mnist-sample", "epochs=1", "models=[mnist_cnn]", "digits=[1,7]"],
        out=tmp_path,
    )
    m = run.load_metrics()
    r = m["models"]["mnist_cnn"]
    assert r["n_generators"] == 18 and r["success_rate"] >= 0.9
    assert r["own_class_l2"] < r["median_l2"]  # reaching another class takes a real change
    with np.load(run.path / "grid_mnist_cnn.npz") as g:
        images, originals, ok = g["images"], g["originals"], g["success"]
    assert images.shape == (2, 10, 1, 28, 28) and originals.shape == (2, 1, 28, 28)
    norms = np.sqrt(((images - originals[:, None]) ** 2).reshape(2, 10, -1).sum(-1))
    off = ~np.eye(10, dtype=bool)[[1, 7]]
    chosen = np.sort(norms[off & ok])
    lower_median = chosen[(len(chosen) - 1) // 2]  # torch.median's convention for even counts
    assert lower_median == pytest.approx(r["median_l2"], rel=1e-4)
    assert (run.path / "figures" / "grid_mnist_cnn.png").is_file()
