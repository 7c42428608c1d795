"""`fer-train` at a tiny size on the real FER2013: splits kept apart, per-class numbers that add
up, class weights, and a Keras .h5 whose predictions equal the stored model's."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from advlab.data import load_dataset
from advlab.experiments import rebuild_report, run_experiment
from advlab.fileio import cache_dir
from advlab.train.losses import class_weights
from advlab.train.store import load_model
from conftest import require_data


@pytest.mark.xdist_group("fer2013")  # one worker decodes FER2013 for every test that needs it
def test_fer_train_small(tmp_path: Path) -> None:
    require_data("fer2013")
    run = run_experiment(
        "fer-train",
        ["width=8", "epochs=2", "batch_size=128", "mistakes=6", "train_fraction=0.25"],
        out=tmp_path,
    )
    m = run.load_metrics()
    confusion = np.asarray(m["confusion"])
    assert confusion.sum() == m["n_test"] == 3589
    assert confusion.sum(axis=1).tolist() == [491, 55, 528, 879, 594, 416, 626]  # PrivateTest
    assert m["test_accuracy"] == pytest.approx(np.trace(confusion) / 3589)
    assert m["test_ci"][0] < m["test_accuracy"] < m["test_ci"][1]
    assert m["n_train"] == 7178  # a stratified quarter of the 28,709 Training faces
    # Two epochs of a width-8 network on a quarter of the faces are well above chance: 14.3%
    # accuracy, and 14.3% mean recall, which always answering "happy" would not beat.
    assert m["test_accuracy"] > 0.2
    assert np.mean([r["recall"] for r in m["per_class"].values()]) > 0.18
    weights = dict(zip(m["classes"], m["class_weights"], strict=True))
    assert weights["disgust"] > 2.5 * weights["happy"]  # the rare class weighs more
    train = load_dataset("fer2013", "train")
    assert m["class_weights"] == pytest.approx(class_weights(train.labels, 7, "sqrt"), abs=1e-6)
    report = (run.path / "report.md").read_text()
    assert "PrivateTest accuracy" in report and "disgust" in report
    rebuild_report(run.path)  # from metrics.json alone, whose keys are sorted
    rebuilt = (run.path / "report.md").read_text()
    for name in ("disgust", "sad", "surprise", "neutral"):
        row = next(line for line in rebuilt.splitlines() if line.startswith(f"| {name} |"))
        assert row.rstrip(" |").endswith(f"{weights[name]:.2f}")  # each class keeps its weight
    assert (run.path / "figures" / "mistakes.png").is_file()

    os.environ["KERAS_BACKEND"] = "torch"
    keras = pytest.importorskip("keras")
    net = keras.models.load_model(run.path / m["h5"])
    test = load_dataset("fer2013", "test")
    x, _ = test.take(16).tensors()
    stored = load_model(cache_dir() / "models" / f"fer_cnn-fer2013-{m['store_key']}" / "model.pt")
    with torch.no_grad():
        expected = stored(x).numpy()
    found = np.asarray(net.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0))
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-4)
