"""`flowers-transfer` on the real Flowers-17 with a quickly pre-trained ResNet-18: the loud
labelling, the unmeasured ImageNet backbones, classifiers and both fine-tuning phases."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from advlab.data import load_dataset
from advlab.experiments import run_experiment
from advlab.models import ModelWrapper, create_model
from advlab.train import fit
from advlab.train.store import ModelRecipe, train_parts
from conftest import require_data


def test_flowers_transfer_small(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_data("flowers17")
    require_data("cifar10")
    monkeypatch.setattr("torch.hub.get_dir", lambda: str(tmp_path / "hub"))
    pretrained: list[ModelRecipe] = []

    def quick_pretraining(recipe: ModelRecipe, *, device: str = "cpu") -> ModelWrapper:
        """The recipe's ResNet-18 trained here on its share of CIFAR-10, without the store's
        evaluation on all 10,000 test images (the store is tested on its own)."""
        pretrained.append(recipe)
        train = load_dataset("cifar10", "train")
        part, _ = train_parts(recipe, train.labels)
        x, y = train.subset(part).tensors()
        torch.manual_seed(0)
        model = ModelWrapper(create_model("resnet18", num_classes=10, stem="imagenet"))
        fit(
            model,
            (x, y),
            dataclasses.replace(recipe.train, schedule="none", lr=0.05),
            progress=False,
        )
        return model

    monkeypatch.setattr("advlab.train.recipes.get_trained", quick_pretraining)
    settings = ["image_size=32", "imagenet_backbones=[mobilenet,vgg16]", "optimizers=[adam]",
                "batch_norm=[true]", "dropout=[0.5]", "phase_a_epochs=3", "phase_b_epochs=1",
                "classifiers=[naive_bayes,knn,logistic_regression]", "pretrain_epochs=1",
                "pretrain_fraction=0.02"]  # fmt: skip
    run = run_experiment("flowers-transfer", settings, out=tmp_path / "runs")
    (recipe,) = pretrained  # recipe A's network, one epoch on 2% of the images
    assert (recipe.model, recipe.dataset, recipe.train_fraction) == ("resnet18", "cifar10", 0.02)
    assert recipe.train.epochs == 1 and recipe.train.augment == "crop_flip"
    m = run.load_metrics()
    assert set(m["unmeasured"]) == {"mobilenet", "vgg16"}
    assert "Keras publishes them as .h5" in m["unmeasured"]["mobilenet"]
    assert "IMAGENET WEIGHTS NOT AVAILABLE" in m["unmeasured"]["vgg16"]
    own = m["backbones"]["resnet18-cifar10"]
    assert "NOT ImageNet" in own["weights"] and "CIFAR-10 (2% of it)" in own["weights"]
    assert own["features"] == 512 and (own["n_selection"], own["n_held_out"]) == (170, 170)
    accs = {k: v["val"] for k, v in own["classifiers"].items()}
    assert set(accs) == {"naive_bayes", "knn", "logistic_regression"}
    # Even features of a barely trained CIFAR-10 network separate flowers far above chance
    # (1/17 = 5.9%).
    assert accs["logistic_regression"] > 0.15
    (tune,) = own["fine_tune"]
    assert len(tune["phase_a"]["val_loss"]) == 3 and len(tune["phase_b"]["val_loss"]) == 1
    assert tune["val_acc"] == tune["phase_b"]["val_acc"][tune["phase_b"]["best_epoch"]]
    assert 0 <= tune["held_out_acc"] <= 1
    from advlab.fileio import cache_dir

    cached = list((cache_dir() / "features").glob("resnet18-cifar10-*-32-*.npy"))
    assert len(cached) >= 2  # the training and the validation images' features
    report = (run.path / "report.md").read_text()
    assert "NOT ImageNet" in report and "supported but not measured here" in report
    assert "0.944" in report and "0.967" in report
    assert (run.path / "figures" / "fine_tune_resnet18-cifar10.png").is_file()
