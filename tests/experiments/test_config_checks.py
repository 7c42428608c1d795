"""Every experiment checks its settings when its config is built: a bad ``--set`` is refused
with one message naming the key, what it expected and what it found, before any data is read
and before a run folder exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from advlab.errors import ConfigError
from advlab.experiments import EXPERIMENTS, run_experiment

REFUSED = [
    ("demo", "n_attack=-5", "n_attack: expected an int >= 1, found -5"),
    ("demo", "epochs=0", "epochs: expected an int >= 1, found 0"),
    ("fgsm-mnist", "epochs=0", "epochs: expected an int >= 1, found 0"),
    ("fooling-cifar", "torch_epochs=0", "torch_epochs: expected an int >= 1, found 0"),
    ("cifar-scratch-twolayer", "lr=-1", "lr: expected a finite number > 0, found -1.0"),
    ("demo", "epsilons=[0.1,8]",
     "epsilons: expected a number in [0, 1], found 8.0 (in [0.1, 8.0])"),
    ("apr-cifar", "chunk=0", "chunk: expected an int >= 1, found 0"),
    ("apr-cifar", "pixels=[1,0]", "pixels: expected an int >= 1, found 0 (in [1, 0])"),
    ("onepixel-cifar", "model=vgg", "model: expected one of resnet18, small_cnn, found 'vgg'"),
    ("onepixel-cifar", "pixels=[]", "pixels: expected a non-empty list, found []"),
    ("robust-mnist", "defense=trades", "defense: expected one of fgsm-rs, pgd, found 'trades'"),
    ("robust-cifar", "epsilon=0", "epsilon: expected a number in (0, 1], found 0.0"),
    ("robust-mnist", "epsilon=8", "epsilon: expected a number in (0, 1], found 8.0"),
    ("fgsm-mnist", "epsilons=[1e308]", "epsilons: expected a number in [0, 1], found 1e+308"),
    ("generator-mnist", "max_rounds=0", "max_rounds: expected "),
    ("fgsm-mnist", "epsilons=[0.1,-0.1]",
     "epsilons: expected a number in [0, 1], found -0.1 (in [0.1, -0.1])"),
    ("jsma-mnist", "gamma=0", "gamma: expected a number in (0, 1], found 0.0"),
    ("mlp-scratch-mnist", "hidden=0", "hidden: expected an int >= 1, found 0"),
    ("mlp-depth-gradients", "activations=[relu,swish]",
     "activations: expected a non-empty list of lecun, relu, sigmoid, tanh, "
     "found ['relu', 'swish']"),
    ("fooling-cifar", "target=truck", "target: expected one of airplane, automobile, bird, cat, "
                                      "deer, dog, frog, horse, ship, found 'truck'"),
    ("generator-mnist", "digits=[3,10]",
     "digits: expected an int in [0, 9], found 10 (in [3, 10])"),
    ("fer-train", "class_weighting=log", "class_weighting: expected one of "),
    ("knn-mnist", "preprocessing=[centred]",
     "preprocessing: expected a list with raw (the lab's baseline), found ['centred']"),
    ("knn-mnist", "ks=[0]", "ks: expected an int >= 1, found 0 (in [0])"),
    ("knn-mnist", "folds=1", "folds: expected an int >= 2, found 1"),
    ("fer-train", "lr=0", "TrainConfig.lr: expected a finite number, lr > 0, got 0.0"),
    ("mlp-depth-gradients", "lr=-0.1", "TrainConfig.lr: expected a finite number, lr > 0"),
    ("mlp-scratch-mnist", "lr_search=[0.1,0]",
     "lr_search: expected a finite number > 0, found 0.0"),
    ("flowers-cnn", "lr=0", "TrainConfig.lr: expected a finite number, lr > 0, got 0.0"),
    ("flowers-transfer", "phase_b_lr=0", "phase_b_lr: expected a finite number > 0, found 0.0"),
    ("flowers-attacks", "population=0", "population: expected "),
    ("robust-mnist", "adversarial_fraction=2", "adversarial_fraction: expected a number in [0, 1]"),
    ("flowers-transfer", "optimizers=[rmsprop]",
     "optimizers: expected a non-empty list of adam, sgd, found ['rmsprop']"),
    ("flowers-transfer", "held_out=1", "held_out: expected a number in (0, 1), found 1.0"),
    ("flowers-attacks", "epsilons=[8]", "epsilons: expected a number in (0, 1], found 8.0"),
    ("flowers-attacks", "cnn.seed=1", "cnn.held_out/seed and transfer.held_out/seed"),
    ("flowers-attacks", "cnn_model=resnet", "cnn_model: expected a non-empty list of "),
]  # fmt: skip


@pytest.mark.parametrize(("name", "setting", "message"), REFUSED)
def test_bad_setting_is_refused_before_a_run_folder(
    tmp_path: Path, name: str, setting: str, message: str
) -> None:
    assert name in EXPERIMENTS
    with pytest.raises(ConfigError) as info:
        run_experiment(name, [setting], out=tmp_path)
    assert str(info.value).startswith(message)
    assert not any(tmp_path.iterdir())


def test_every_default_config_is_valid() -> None:
    for name in EXPERIMENTS:
        config = EXPERIMENTS.get(name).config
        assert config().seed == 0, name


@pytest.mark.parametrize("seed", [-1, 2**32, 10**20])
def test_a_seed_out_of_range_is_refused_before_a_run_folder(tmp_path: Path, seed: int) -> None:
    with pytest.raises(
        ConfigError, match=rf"^--seed: expected an int in \[0, 4294967295\], found {seed}$"
    ):
        run_experiment("demo", seed=seed, out=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_pool_of_no_workers_is_refused_when_made() -> None:
    from advlab.backends import LocalBackend

    with pytest.raises(ConfigError, match=r"^--workers: expected an int >= 1, found 0$"):
        LocalBackend(0)
    with pytest.raises(ConfigError, match=r"^threads: expected an int >= 1, found 0$"):
        LocalBackend(2, threads=0)


def test_model_settings_are_checked_by_building_the_model_on_the_meta_device(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"^model_config: expected settings small_cnn can be "):
        run_experiment("train", ["model=small_cnn", "model_config.width=-1"], out=tmp_path)
    with pytest.raises(ConfigError, match=r"unknown keyword parameter\(s\) 'depth'"):
        run_experiment("train", ["model=small_cnn", "model_config.depth=3"], out=tmp_path)
    assert not any(tmp_path.iterdir())
