"""`mlp-depth-gradients` at tiny size on real MNIST: table, gradient grid, LeCun panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from advlab.experiments import run_experiment
from conftest import require_data


def test_mlp_depth_gradients_tiny(tmp_path: Path) -> None:
    require_data("mnist")
    run = run_experiment(
        "mlp-depth-gradients",
        ["n_train=2000", "n_test=500", "depths=[2,8]", "seeds=2", "epochs=2", "workers=1"],
        out=tmp_path,
    )
    m = run.load_metrics()
    combos = {(r["activation"], r["depth"], r["seed"]) for r in m["runs"]}
    assert combos == {
        (a, d, s) for a in ("relu", "tanh", "sigmoid", "lecun") for d in (2, 8) for s in (0, 1)
    }
    for r in m["runs"]:
        assert len(r["grad_trained"]) == len(r["grad_untrained"]) == r["depth"] + 1
        assert len(r["history"]["val_acc"]) == 2
    # the vanishing gradient of a deep sigmoid net: its first layer gets far less than its last
    sig = [r for r in m["runs"] if r["activation"] == "sigmoid" and r["depth"] == 8]
    assert all(r["grad_trained"][0] < 0.01 * r["grad_trained"][-1] for r in sig)
    lecun = [r for r in m["runs"] if r["activation"] == "lecun" and r["depth"] == 8]
    assert np.mean([r["test_accuracy"] for r in lecun]) > 0.5
    lo, hi = m["derivative_ranges"]["sigmoid"]
    assert 0 < lo < 1e-6 and abs(hi - 0.25) < 1e-12
    report = (run.path / "report.md").read_text()
    assert "| activation | depth 2 | depth 8 |" in report
    for fig in ("equations", "gradients_trained", "gradients_untrained", "lecun_vs_tanh"):
        assert (run.path / "figures" / f"{fig}.png").stat().st_size > 5000
