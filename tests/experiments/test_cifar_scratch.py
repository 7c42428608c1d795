"""seed 003's numpy experiments at small size on real CIFAR-10, and the linear fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from advlab.experiments import run_experiment
from conftest import require_data


def test_linear_fit_approaches_least_squares(tmp_path: Path) -> None:
    run = run_experiment("cifar-scratch-linear", ["steps=3000"], out=tmp_path)
    m = run.load_metrics()
    assert not m["diverged"] and m["loss"][0] > 100 * m["loss"][-1]
    assert m["w"] == pytest.approx(m["w_lstsq"], abs=0.05)
    assert m["loss"][-1] < 1.02 * m["loss_lstsq"] + 1.0
    # lr 1e-3 is past the stability limit 2 / (2 E[x^2]) ~ 3e-4: divergence, reported
    bad = run_experiment("cifar-scratch-linear", ["lr=1e-3", "steps=500"], out=tmp_path)
    assert bad.load_metrics()["diverged"]


@pytest.mark.parametrize(
    ("name", "extra", "band"),
    [
        ("cifar-scratch-softmax", ["epochs=4"], (0.22, 0.36)),
        ("cifar-scratch-twolayer", ["epochs=6", "hidden=32"], (0.2, 0.40)),
    ],
)
def test_cifar_scratch_small(
    tmp_path: Path, name: str, extra: list[str], band: tuple[float, float]
) -> None:
    require_data("cifar10")
    run = run_experiment(name, ["n_train=4000", "n_val=500", "n_test=1000", *extra], out=tmp_path)
    m = run.load_metrics()
    assert m["split"] == {"train": 4000, "val": 500, "test": 1000}
    assert band[0] < m["test_accuracy"] < band[1]
    assert len(m["history"]["val_acc"]) == len(m["history"]["train_acc"])
    assert m["history"]["lr"][1] == pytest.approx(m["history"]["lr"][0] * 0.9)
    report = (run.path / "report.md").read_text()
    assert "the seed's report" in report and report.count("](figures/") == 2
