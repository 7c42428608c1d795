"""`flowers-cnn` on the real Flowers-17 at a tiny size: the table, the split, the selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advlab.errors import ConfigError
from advlab.experiments import run_experiment
from conftest import require_data


def test_flowers_cnn_small(tmp_path: Path) -> None:
    require_data("flowers17")
    run = run_experiment("flowers-cnn", ["models=[baseline,mk1]", "image_size=32", "epochs=3",
                                         "lr=0.05"], out=tmp_path)  # fmt: skip
    m = json.loads((run.path / "metrics.json").read_text())
    assert (m["n_train"], m["n_selection"], m["n_held_out"]) == (1020, 170, 170)
    base = m["models"]["baseline"]
    assert base["parameters_128"] == 8_390_673
    assert base["parameters"] == 896 + 16 * 16 * 32 * 64 + 64 + 64 * 17 + 17
    for r in m["models"].values():
        h = r["history"]
        epoch = h["val_loss"].index(min(h["val_loss"])) + 1  # the first minimum is kept
        assert r["best_epoch"] == epoch and r["val_loss"] == min(h["val_loss"])
        assert r["val_acc"] == h["val_acc"][epoch - 1]
        assert 0 <= r["held_out_acc"] <= 1
    # 17 classes: chance is 5.9%; three epochs of the baseline at 32 px already do better.
    assert base["held_out_acc"] > 0.12 and base["train_acc"] > 0.12
    report = (run.path / "report.md").read_text()
    assert "held-out acc." in report and "0.541" in report
    assert (run.path / "figures" / "curves_mk1.png").is_file()


def test_flowers_cnn_refuses_sizes_a_valid_network_cannot_take(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^image_size: 64 is too small for \['mk5'\]"):
        run_experiment("flowers-cnn", ["models=[mk5]", "image_size=64"], out=tmp_path)
