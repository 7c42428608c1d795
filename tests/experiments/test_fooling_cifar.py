"""`fooling-cifar` on a real CIFAR-10 slice: the numpy net is fooled, distances are honest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from advlab.experiments import run_experiment
from conftest import require_data


def test_fooling_cifar_small(tmp_path: Path) -> None:
    require_data("cifar10")
    run = run_experiment(
        "fooling-cifar",
        [
            "n_train=10000",
            "n_val=500",
            "n_test=500",
            "epochs=6",
            "n_stats=25",
            "torch_model=none",
            "stepsize=0.2",
            "max_steps=100",
        ],
        out=tmp_path,
    )
    m = run.load_metrics()
    assert 0.3 < m["test_accuracy"]["numpy two-layer net"] < 0.5
    r = m["models"]["numpy two-layer net"]
    assert r["fooled"] and 1 <= r["steps"] <= 100
    assert r["p_target_after"] > r["p_target_before"]
    # Each step is 0.2 long on [0, 1]: at most 51 per step on the 0-255 scale.
    assert 0 < r["l2_255"] <= 51 * r["steps"] + 1e-3
    # A weak net (6 epochs on 10,000 images): most, not all, trucks fall within 100 steps.
    assert r["stats"]["success_rate"] >= 0.5 and r["stats"]["n"] == 25  # measured 0.64
    with np.load(run.path / "fooling.npz") as npz:
        original, fooled = npz["original"], npz["numpy_two-layer_net_fooled"]
    assert abs(float(np.sqrt(((fooled - original) ** 2).sum())) * 255 - r["l2_255"]) < 1e-2
    assert "report measured 91" in (run.path / "report.md").read_text()
