"""`mlp-scratch-mnist` on a real MNIST slice."""

from __future__ import annotations

import math
from pathlib import Path

from advlab.experiments import run_experiment
from conftest import require_data


def test_mlp_scratch_mnist_small(tmp_path: Path) -> None:
    require_data("mnist")
    run = run_experiment(
        "mlp-scratch-mnist",
        [
            "n_train=3000",
            "n_test=500",
            "epochs=4",
            "search_epochs=2",
            "hidden=32",
            "lr_search=[0.05,0.5,1e30]",
            "workers=1",
        ],
        out=tmp_path,
    )
    m = run.load_metrics()
    runs = {(r["activation"], r["lr"], r["epochs"]): r for r in m["runs"]}
    base = runs[("sigmoid", 0.05, 4)]
    assert 0.6 < base["test_accuracy"] < 0.95 and len(base["history"]["val_acc"]) == 4
    assert runs[("sigmoid", 0.005, 4)]["test_accuracy"] < base["test_accuracy"]  # too slow
    assert runs[("relu", 0.05, 4)]["test_accuracy"] > base["test_accuracy"]
    # lr 1e30 overflows float32: reported as divergence, not a crash
    wild = runs[("relu", 1e30, 2)]
    assert wild["diverged"] is not None and math.isnan(wild["test_accuracy"])
    report = (run.path / "report.md").read_text()
    assert "diverged in epoch" in report and "Question 4, second part" in report
    assert report.count("](figures/") == 3
