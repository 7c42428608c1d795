"""`knn-mnist` on a real MNIST slice: every question of the lab answered in the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advlab.errors import ConfigError
from advlab.experiments import run_experiment
from conftest import require_data

SMALL = [
    "n_train=2000",
    "n_test=300",
    "n_buggy=120",
    "ks=[1,2,3,5]",
    "folds=3",
    "preprocessing=[raw,centred,pca-50,zca]",
    "n_misclassified=3",
]


def test_knn_mnist_small_slice(tmp_path: Path) -> None:
    require_data("mnist")
    run = run_experiment("knn-mnist", SMALL, seed=0, out=tmp_path)
    m = run.load_metrics()
    assert m["dataset"]["train"] == 2000 and m["dataset"]["test"] == 300
    one = m["one_nn"]
    assert 0.82 < one["l1"]["accuracy"] < 0.95 and 0.84 < one["l2"]["accuracy"] < 0.96
    # the bug: uint8 wrap-around collapses accuracy; hand-computed distances differ from it
    bug = m["bug"]
    for metric in ("l1", "l2"):
        assert bug["accuracy"][metric]["buggy"] < 0.5 < 0.8 < bug["accuracy"][metric]["fixed"]
    assert any(p["l1_by_hand"] != p["l1_uint8"] for p in bug["pairs"])
    assert all(p["l1_by_hand"] >= 0 for p in bug["pairs"])
    # voting: k chosen among the grid, confusion matrix over the whole test slice
    for metric in ("l1", "l2"):
        v = m["voting"][metric]
        assert v["ks"] == [1, 2, 3, 5] and v["best_k"] in v["ks"]
        assert v["cv_mean"][0] == v["cv_mean"][1]  # k=2 ties go to the nearest: same as 1-NN
        assert v["test_accuracy"][0] == pytest.approx(one[metric]["accuracy"])
    conf = np.array(m["chosen"]["confusion"])
    assert conf.sum() == 300 and np.trace(conf) / 300 == pytest.approx(m["chosen"]["accuracy"])
    # preprocessing: centring cannot change a distance
    table = {r["preprocessing"]: r for r in m["preprocessing_table"]}
    assert table["centred"]["l1"] == table["raw"]["l1"]
    assert table["centred"]["l2"] == table["raw"]["l2"]
    assert table["pca-50"]["features"] == 50
    report = (run.path / "report.md").read_text()
    assert "60,000 for training" in report and "modulo 256" in report
    assert report.count("](figures/") == 5
    for fig in ("accuracy_vs_k", "confusion", "misclassified", "preprocessing", "covariance"):
        assert (run.path / "figures" / f"{fig}.png").stat().st_size > 5000


def test_knn_mnist_rejects_unknown_preprocessing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="preprocessing"):
        run_experiment("knn-mnist", ["preprocessing=[raw,sharpen]"], out=tmp_path)
