"""The Flowers-17 experiments on the real data at a tiny size: tables, splits, the epoch
selection, augmentation, reuse through the model store, and the two stacking variants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from advlab.errors import ConfigError
from advlab.experiments import run_experiment
from conftest import require_data

SMALL = ["image_size=24", "epochs=3", "lr=0.05"]
TINY = ["image_size=16", "epochs=2", "lr=0.05"]  # augmentation and ensemble


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A model store of this module's own, so that what is reused is known."""
    require_data("flowers17")
    mp = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("cache")
    mp.setenv("ADVLAB_CACHE_DIR", str(cache))
    yield cache
    mp.undo()


def test_flowers_cnn_small(store: Path, tmp_path: Path) -> None:
    run = run_experiment("flowers-cnn", ["models=[baseline,mk1]", *SMALL], out=tmp_path)
    m = run.load_metrics()
    assert (m["n_train"], m["n_selection"], m["n_held_out"]) == (1020, 170, 170)
    base = m["models"]["baseline"]
    assert base["parameters_128"] == 8_390_673
    assert base["parameters"] == 896 + 12 * 12 * 32 * 64 + 64 + 64 * 17 + 17
    for r in m["models"].values():
        h = r["history"]
        epoch = h["val_loss"].index(min(h["val_loss"])) + 1  # the first minimum is kept
        assert r["best_epoch"] == epoch and r["val_loss"] == min(h["val_loss"])
        assert r["val_acc"] == h["val_acc"][epoch - 1]
        assert 0 <= r["held_out_acc"] <= 1 and not r["reused"]
    # 17 classes: chance is 5.9%; three epochs of the baseline at 24 px already do better.
    assert base["held_out_acc"] > 0.12 and base["train_acc"] > 0.12
    report = (run.path / "report.md").read_text()
    assert "held-out acc." in report and "0.541" in report
    assert (run.path / "figures" / "curves_mk1.png").is_file()


def test_flowers_augment_then_ensemble_reuses_it(store: Path, tmp_path: Path) -> None:
    run = run_experiment(
        "flowers-augment",
        ["models=[mk2]", "augments=[none,mix]", "examples=3", *TINY],
        out=tmp_path,
    )
    m = run.load_metrics()
    assert [(r["model"], r["augment"]) for r in m["runs"]] == [("mk2", "none"), ("mk2", "mix")]
    plain, mixed = m["runs"]
    assert plain["store_key"] != mixed["store_key"]
    # Augmented batches are harder to fit than the plain images after the same two epochs.
    assert mixed["history"]["train_loss"][-1] > plain["history"]["train_loss"][-1]
    with np.load(run.path / "augment_examples.npz") as saved:
        images = saved["images"]
    assert images.shape == (2, 3, 16, 16, 3)  # original and configuration #3
    assert not np.allclose(images[0], images[1]) and 0 <= images.min() <= images.max() <= 1
    report = (run.path / "report.md").read_text()
    assert "#3 mix" in report and "0.764" in report
    assert (run.path / "figures" / "loss_mk2.png").is_file()

    run = run_experiment(
        "flowers-ensemble", ["models=[mk2,baseline]", "trees=50", *TINY], out=tmp_path
    )
    e = run.load_metrics()
    report_variant, unbiased = e["report_variant"], e["unbiased"]
    mk2 = report_variant["learners"]["mk2"]
    assert mk2["reused"] and mk2["store_key"] == mixed["store_key"]  # the augmentation's Mk-2
    assert mk2["held_out_acc"] == pytest.approx(mixed["held_out_acc"])
    assert not report_variant["learners"]["baseline"]["reused"]
    assert report_variant["n_meta"] == 1020
    assert (unbiased["n_fit"], unbiased["n_meta"]) == (714, 306)  # 70 / 30 of every class
    assert unbiased["learners"]["mk2"]["store_key"] != mk2["store_key"]
    for variant in (report_variant, unbiased):
        imp = np.asarray(variant["importances"])
        assert imp.shape == (2, 17) and imp.min() >= 0 and imp.sum() == pytest.approx(1.0)
        for acc in (*variant["soft_vote"].values(), *variant["stacking"].values()):
            assert 0.0 <= acc <= 1.0
    report = (run.path / "report.md").read_text()
    assert "unbiased variant" in report and "0.820" in report
    assert (run.path / "figures" / "importance_neurons_unbiased.png").is_file()


def test_flowers_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^image_size: expected >= 66 for mk5 \(no padding\), "
        r"found 64$",
    ):
        run_experiment("flowers-cnn", ["models=[mk5]", "image_size=64"], out=tmp_path)
    with pytest.raises(ConfigError, match=r"^augments: expected a non-empty list of none, zoom"):
        run_experiment("flowers-augment", ["augments=[rotate]"], out=tmp_path)
    with pytest.raises(ConfigError, match=r"^models: expected two or more for an ensemble"):
        run_experiment("flowers-ensemble", ["models=[mk2]"], out=tmp_path)
    with pytest.raises(ConfigError, match=r"^precision: expected one of auto, fp32, bf16, found"):
        run_experiment("flowers-cnn", ["precision=fp16"], out=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before a run folder was made
