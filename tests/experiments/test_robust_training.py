"""`robust-mnist` on a real MNIST slice, with two small models trained here (not the store)."""

from __future__ import annotations

from pathlib import Path

import torch

from advlab.data import load_dataset
from advlab.defenses import DefenseObjective, FGSMRandomStart
from advlab.experiments import run_experiment
from advlab.train import TrainConfig, fit
from advlab.train.store import ModelRecipe, build, save_model
from conftest import require_data


def _checkpoints(tmp: Path) -> tuple[Path, Path]:
    x, y = load_dataset("mnist", "train").take(3000, seed=0).tensors()
    cfg = TrainConfig(epochs=3, optimizer="adam", lr=2e-3, batch_size=64, seed=0)
    paths = []
    for name, objective in (
        ("standard", None),
        ("robust", DefenseObjective(FGSMRandomStart(0.2), 1.0)),
    ):
        recipe = ModelRecipe("mnist_cnn", "mnist", train=cfg)
        torch.manual_seed(0)
        model = build(recipe, (1, 28, 28), 10, [0.13], [0.31])
        fit(model, (x, y), cfg, progress=False, objective=objective)
        paths.append(save_model(tmp / f"{name}.pt", model.eval(), recipe, (1, 28, 28), 10, {}))
    return paths[0], paths[1]


def test_robust_mnist_small(tmp_path: Path) -> None:
    require_data("mnist")
    standard, robust = _checkpoints(tmp_path)
    settings = [f"standard_checkpoint={standard}", f"robust_checkpoint={robust}", "n_images=200",
                "pgd_steps=20", "restarts=2", "generator_images=3", "epsilon=0.2",
                "curve_epsilons=[0,0.2,0.5]", "chunk=50"]  # fmt: skip
    run = run_experiment("robust-mnist", settings, out=tmp_path)
    m = run.load_metrics()
    strongest = m["strongest"]
    assert strongest == "PGD-20 x 2 restarts" and m["n_images"] == 200
    for side in ("standard", "robust"):
        a = m[side]["attacks"]
        assert m[side]["clean_accuracy"] >= 0.85
        worst = a["worst of all above"]["robust_accuracy"]
        assert worst <= min(v["robust_accuracy"] for v in a.values()) + 1e-12
        # restart 0 is PGD-20 itself; more restarts can only break more images
        assert a[strongest]["robust_accuracy"] <= a["FGSM"]["robust_accuracy"] + 0.05
        curve = m[side]["curve"]
        assert abs(curve[0] - m[side]["clean_accuracy"]) < 1e-9
        assert curve[-1] <= curve[1] + 1e-9
        assert abs(curve[1] - a["PGD-40"]["robust_accuracy"]) < 1e-9
        g = m[side]["generator"]
        assert g["n"] == 3 and 0 <= g["within_epsilon"] <= g["success_rate"]
    # Measured at eps 0.2: the standard model keeps 8%, the FGSM-RS one 61.5%.
    assert m["standard"]["attacks"][strongest]["robust_accuracy"] < 0.3
    assert (
        m["robust"]["attacks"][strongest]["robust_accuracy"]
        >= m["standard"]["attacks"][strongest]["robust_accuracy"] + 0.25
    )
    report = (run.path / "report.md").read_text()
    assert "Gradient-masking checks" in report and "grayscale" in report
    for fig in ("attacks.png", "accuracy_vs_eps.png", "generator.png"):
        assert (run.path / "figures" / fig).is_file()
    # The white-box evaluation in 3 shards of its 4 chunks (a local pool): the same numbers
    # (without the generator attack, which is not part of it and takes time).
    sharded = run_experiment(
        "robust-mnist", [*settings, "generator_images=0"], out=tmp_path / "sharded", shards=3
    )
    again = sharded.load_metrics()
    for side in ("standard", "robust"):
        assert again[side]["attacks"] == m[side]["attacks"]
        assert again[side]["curve"] == m[side]["curve"]
