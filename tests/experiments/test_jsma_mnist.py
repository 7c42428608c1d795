"""`jsma-mnist` end to end on the embedded MNIST sample (no download), at tiny size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advlab.experiments import run_experiment


def test_jsma_mnist_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path / "cache"))  # a model store of its own
    run = run_experiment(
        "jsma-mnist",
        ["dataset=mnist-sample", "epochs=1", "n_images=6", "grid_classes=3"],
        out=tmp_path,
    )
    m = run.load_metrics()
    assert m["budget"] == 113  # gamma 14.5% of 784 pixels
    assert m["n_attacks"] == 9 * m["n_correct"] and m["n_correct"] >= 4
    assert 0.2 <= m["success_rate"] <= 1.0
    lo, hi = m["success_rate_ci"]
    assert lo <= m["success_rate"] <= hi
    assert 0 < m["mean_changed_fraction_success"] <= 113 / 784
    matrix = np.asarray(m["matrix"], dtype=float)
    assert matrix.shape == (10, 10) and np.isnan(np.diag(matrix)).all()
    with np.load(run.path / "grid.npz") as g:
        images, ok = g["images"], g["success"]
    assert images.shape == (3, 3, 1, 28, 28) and ok.diagonal().all()
    # Off the diagonal, each cell changes at most the budget of pixels of its row's original.
    originals = images[np.arange(3), np.arange(3)]
    changed = (images != originals[:, None]).reshape(3, 3, -1).sum(-1)
    assert changed.max() <= 113 and (changed.diagonal() == 0).all()
    assert (run.path / "figures" / "grid.png").is_file()
    assert "97.05%" in (run.path / "report.md").read_text()
