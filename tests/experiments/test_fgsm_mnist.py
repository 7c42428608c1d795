"""`fgsm-mnist` end to end on the embedded MNIST sample (no download), at tiny size."""

from __future__ import annotations

from pathlib import Path

import pytest

from advlab.experiments import run_experiment

TINY = ["dataset=mnist-sample", "epochs=1", "n_images=150", "epsilons=[0.0,0.1,0.2,0.3]",
        "search_epsilons=[0.05,0.1,0.15,0.2,0.25,0.3,0.4,0.5]"]  # fmt: skip


def test_fgsm_mnist_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path / "cache"))  # a model store of its own
    run = run_experiment("fgsm-mnist", TINY, out=tmp_path)
    m = run.load_metrics()
    assert m["model"]["test_accuracy"] > 0.85  # one epoch of mnist_cnn on 4,000 digits
    ex = m["example"]
    assert ex["label"] == 7 and ex["fgsm_fooled"] and ex["bim_fooled"]
    assert ex["fgsm_prediction"] != 7
    assert ex["smallest_epsilon"]["bim"] <= ex["smallest_epsilon"]["fgsm"]
    f, b = m["curves"]["fgsm"], m["curves"]["bim"]
    assert f[0]["success_rate"] == 0 and f[0]["robust_accuracy"] == f[0]["clean_accuracy"]
    assert f[-1]["robust_accuracy"] < 0.25 and b[-1]["robust_accuracy"] <= f[-1]["robust_accuracy"]
    lo, hi = f[1]["success_rate_ci"]
    assert lo <= f[1]["success_rate"] <= hi
    # The JAX backend agrees with PyTorch within half a point at every eps (seed 002's target).
    assert max(m["jax_max_gap"].values()) <= 0.005
    report = (run.path / "report.md").read_text()
    assert report.count("](figures/") == 2 and "JAX vs PyTorch" in report
    for name in ("example.png", "accuracy_vs_epsilon.png"):
        assert (run.path / "figures" / name).stat().st_size > 10_000
