"""flowers-attacks at test size: every attack on ten held-out flowers against two small CNNs;
budgets, metrics and the report's numbers checked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from advlab.data import load_dataset
from advlab.experiments import run_experiment
from advlab.models import ModelWrapper, create_model
from advlab.train import TrainConfig, fit
from conftest import require_data

SETTINGS = [
    "n_images=10", "population=20", "generations=3", "jsma_images=4", "pixels=[1,3]",
    "epsilons=[0.01,0.05]", "examples=2",
]  # fmt: skip


def test_flowers_attacks_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The two models are small CNNs trained here (how the real ones are built is tested with
    the store and `flowers-transfer`); everything after them is the experiment's own."""
    require_data("flowers17")
    sizes = {"cnn": 16, "transfer": 20}

    def small(name: str) -> Callable[..., tuple[ModelWrapper, dict[str, Any]]]:
        def build(cfg: Any, ctx: Any) -> tuple[ModelWrapper, dict[str, Any]]:
            train = load_dataset("flowers17", "train", image_size=sizes[name])
            x, y = train.tensors()
            torch.manual_seed(0)
            model = ModelWrapper(create_model("cifar_cnn", num_classes=17, width=8))
            fit(model, (x, y), TrainConfig(epochs=6, lr=0.05, batch_size=32), progress=False)
            info = {"name": f"small {name}", "image_size": sizes[name], "store_key": "none",
                    "weights": "trained in the test, NOT ImageNet"}  # fmt: skip
            return model.eval(), info

        return build

    monkeypatch.setattr("advlab.experiments.flowers_attacks._cnn", small("cnn"))
    monkeypatch.setattr("advlab.experiments.flowers_attacks._transfer", small("transfer"))
    run = run_experiment("flowers-attacks", SETTINGS, out=tmp_path / "runs")
    m = run.load_metrics()
    for name, side in (("cnn", 16), ("transfer", 20)):
        r = m["models"][name]
        assert r["image_size"] == side and r["n_images"] == 10
        with np.load(run.path / f"{name}_examples.npz") as saved:
            x, fgsm = saved["x"], saved["fgsm"]
            assert x.shape == (10, 3, side, side)
            assert np.abs(fgsm - x).max() <= 0.05 + 1e-6  # the last eps
            for d in (1, 3):
                moved = (saved[f"one_pixel_{d}"] != x).any(axis=1).reshape(10, -1).sum(1)
                assert moved.max() <= d
            jsma = saved["jsma"]
            budget = r["jsma"]["budget"]
            assert budget == max(2, int(0.01 * 3 * side * side))
            assert (jsma != x[:4]).reshape(4, -1).sum(1).max() <= budget
        for entry in r["fgsm"] + r["one_pixel"] + [r["jsma"]]:
            assert entry["robust_accuracy"] <= entry["clean_accuracy"] + 1e-9
            assert 0 <= entry["success_rate"] <= 1 or np.isnan(entry["success_rate"])
        assert r["fgsm"][0]["clean_accuracy"] == pytest.approx(r["clean_accuracy"])
    assert "NOT ImageNet" in m["models"]["transfer"]["weights"]
    md = (run.path / "report.md").read_text()
    first = m["models"]["cnn"]["fgsm"][0]
    assert f"FGSM 2.55/255 | {100 * first['success_rate']:.1f}%" in md
    assert (run.path / "figures" / "success.png").is_file()
    assert (run.path / "figures" / "examples_cnn.png").is_file()
