"""The training core's reference recipes, for experiments that attack or defend their models.

`resnet18_cifar10("imagenet")` is recipe A of benchmarks/README.md (torchvision's unmodified
ResNet-18 on 32 x 32 CIFAR-10, 20 epochs on CPU: 83.11% test accuracy); `"cifar"` is recipe B
(3 x 3 stem without max-pool, 40 epochs, written for a GPU). A model trained by the
`advlab train` command of either recipe is found in the store under the same key.

`flowers17(name, ...)` is how seed 004 trains its Flowers-17 CNNs, with `FlowersTraining` its
settings; the flowers experiments share it, so that a network one of them trained is found by
the others (the ensemble reuses the augmentation study's Mk-2 and Mk-3).
`self_pretrained_backbone` is the transfer backbone of seed 004 Part C when no ImageNet weights
are at hand: recipe A cut after layer3, labelled NOT ImageNet.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError
from advlab.models import ModelWrapper
from advlab.models.flowers import ARCHITECTURES, minimum_size
from advlab.report import percent
from advlab.train.checkpoint import load_checkpoint
from advlab.train.store import ModelRecipe, get_trained, load_model, weights_sha256
from advlab.train.trainer import TrainConfig, cpu_bf16_supported
from advlab.train.transfer import Backbone, TransferSettings, resnet18_backbone
from advlab.validation import check_choices, check_fraction, check_in, check_int

STEMS = ("imagenet", "cifar")
PRECISIONS = ("auto", "fp32", "bf16")
SELF_PRETRAINED = "resnet18-cifar10"


def resnet18_cifar10(stem: str = "imagenet", *, seed: int = 0) -> ModelRecipe:
    """The stored ResNet-18 on CIFAR-10 for `stem` ("imagenet": recipe A, "cifar": recipe B)."""
    if stem == "imagenet":
        train = TrainConfig(
            epochs=20,
            batch_size=128,
            lr=0.1,
            nesterov=True,
            weight_decay=5e-4,
            schedule="onecycle",
            augment="crop_flip",
            seed=seed,
        )
    elif stem == "cifar":
        train = TrainConfig(
            epochs=40,
            batch_size=512,
            lr=0.4,
            nesterov=True,
            weight_decay=5e-4,
            schedule="onecycle",
            augment="crop_flip",
            label_smoothing=0.1,
            seed=seed,
        )
    else:
        raise ConfigError(f"stem: expected one of {STEMS}, found {stem!r}")
    return ModelRecipe("resnet18", "cifar10", {"stem": stem}, train)


class StoreTrained:
    """For an experiment config whose model comes from the model store, trained with the
    config's own `model`, `dataset`, `epochs`, `batch_size`, `lr`, `optimizer` and `seed`
    fields (fgsm-mnist, jsma-mnist): `recipe` is that model's recipe."""

    model: str
    dataset: str
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    seed: int

    def recipe(self) -> ModelRecipe:
        """The model's recipe in the model store."""
        train = TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            optimizer=self.optimizer,
            seed=self.seed,
        )
        return ModelRecipe(self.model, self.dataset, train=train)


CIFAR10_MODELS = ("resnet18", "small_cnn")
"""The stored CIFAR-10 models `cifar10_model` knows by name."""


@dataclass(frozen=True)
class LoadedModel:
    """A model an attack evaluation runs on: the model, a line that says what it is (reports),
    its checkpoint file (what shard workers load) and its architecture (``name`` and
    ``config`` of `advlab.models.create_model`)."""

    model: ModelWrapper
    description: str
    file: str
    architecture: dict[str, Any]


def cifar10_model(
    name: str = "resnet18", *, stem: str = "imagenet", checkpoint: str = "", device: str = "cpu"
) -> LoadedModel:
    """An advlab model checkpoint if `checkpoint` is given, else the model store's CIFAR-10
    model `name` (trained now if the store lacks it): ``"resnet18"``, the training core's
    torchvision ResNet-18 (recipe A or B by `stem`), or ``"small_cnn"`` (10 epochs of SGD with
    crop and flip). In evaluation mode.

    Raises:
        ConfigError: an unknown `name`.
        RunError: `checkpoint` is not a readable advlab model checkpoint.
    """
    if checkpoint:
        path = Path(checkpoint)
        model = load_model(path, device=device)
        info = load_checkpoint(path, map_location="cpu")["model"]
        return LoadedModel(model.eval(), f"checkpoint `{checkpoint}`", checkpoint, info)
    check_in("model", name, CIFAR10_MODELS)
    if name == "resnet18":
        recipe = resnet18_cifar10(stem)
        what = f"torchvision ResNet-18, {stem} stem (recipe `{recipe.key()}`)"
    else:
        train = TrainConfig(epochs=10, lr=0.05, batch_size=128, augment="crop_flip", seed=0)
        recipe = ModelRecipe("small_cnn", "cifar10", train=train)
        what = f"advlab's small_cnn (recipe `{recipe.key()}`)"
    model = get_trained(recipe, device=device).eval()
    info = {"name": recipe.model, "config": recipe.model_config}
    return LoadedModel(model, what, str(recipe.folder() / "model.pt"), info)


def flowers17(
    model: str,
    *,
    image_size: int = 72,
    epochs: int = 20,
    lr: float = 0.01,
    momentum: float = 0.0,
    batch_size: int = 32,
    augment: str = "none",
    held_out: float = 0.5,
    train_fraction: float = 1.0,
    cpu_bf16: bool = False,
    seed: int = 0,
) -> ModelRecipe:
    """A seed-004 network (``baseline``, ``mk1`` .. ``mk6``) trained on Flowers-17 as the report
    trains it: Keras' SGD (lr 0.01, no momentum), pixels scaled to [0, 1] and not normalised,
    the weights of the epoch of minimum validation loss kept (restored at the end of `fit`).

    `held_out` of the validation images (stratified) never take part in that choice and give
    an unbiased accuracy; `train_fraction` < 1 trains on that stratified share of the training
    images only (the rest can fit a stacking meta-learner: `store.train_parts`). `augment` is a
    `TrainConfig.augment` preset (``zoom``, ``flips``, ``mix``: the report's configurations
    #1-#3). `cpu_bf16` trains with bfloat16 autocast on CPU (`TrainConfig.cpu_bf16`).
    """
    train = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        early_stopping=epochs,
        augment=augment,
        cpu_bf16=cpu_bf16,
        seed=seed,
    )
    return ModelRecipe(
        f"flowers_{model}",
        "flowers17",
        {},
        train,
        normalize=False,
        data_options={"image_size": image_size},
        held_out=held_out,
        train_fraction=train_fraction,
    )


@dataclass(frozen=True)
class FlowersTraining:
    """How every seed-004 network is trained (shared by the flowers experiments).

    CPU defaults: 72 x 72 inputs (the smallest common size above Mk-5's 66) and few epochs;
    the report's setting, for a GPU: ``--set image_size=128 --set epochs=50`` (150 for the
    augmentation and ensemble studies).

    ``precision``: ``fp32``; ``bf16`` (bfloat16 autocast for CPU training, weights in float32;
    about 4x faster per epoch on a CPU with AMX); or ``auto``, bf16 where the CPU has native
    bfloat16 kernels and fp32 elsewhere. On CUDA, training uses mixed precision either way.
    The reports say which was used.
    """

    image_size: int = 72
    epochs: int = 20
    lr: float = 0.01
    momentum: float = 0.0  # Keras' SGD default
    batch_size: int = 32
    held_out: float = 0.5  # share of the validation images kept from the epoch selection
    precision: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("image_size", self.image_size, minimum=1)
        check_int("epochs", self.epochs, minimum=1)
        check_fraction("held_out", self.held_out, zero=False, one=False)
        check_in("precision", self.precision, PRECISIONS)
        self.recipe(next(iter(ARCHITECTURES)))  # lr, momentum, batch size: TrainConfig's checks

    def check_models(self, models: tuple[str, ...], name: str = "models") -> tuple[str, ...]:
        """`models`, names of seed 004's networks that take inputs of `image_size` (there is no
        padding: Mk-5 needs 66 x 66).

        Raises:
            ConfigError: an unknown name, an empty list, or a network the size is too small for.
        """
        check_choices(name, models, list(ARCHITECTURES))
        small = [m for m in models if minimum_size(m) > self.image_size]
        if small:
            least = max(map(minimum_size, small))
            raise ConfigError(
                f"image_size: expected >= {least} for {', '.join(small)} (no "
                f"padding), found {self.image_size}"
            )
        return models

    def cpu_bf16(self) -> bool:
        """Whether CPU training uses bfloat16 autocast (``precision`` resolved)."""
        return self.precision == "bf16" or (self.precision == "auto" and cpu_bf16_supported())

    def recipe(self, model: str, augment: str = "none", train_fraction: float = 1.0) -> ModelRecipe:
        return flowers17(
            model,
            image_size=self.image_size,
            epochs=self.epochs,
            lr=self.lr,
            momentum=self.momentum,
            batch_size=self.batch_size,
            augment=augment,
            held_out=self.held_out,
            train_fraction=train_fraction,
            cpu_bf16=self.cpu_bf16(),
            seed=self.seed,
        )


def self_pretrained_backbone(settings: TransferSettings, device: str) -> Backbone:
    """advlab's ResNet-18 trained on CIFAR-10 (recipe A at `settings`' pre-training epochs and
    share of the data, from the model store), cut after layer3; its label says NOT ImageNet."""
    recipe = resnet18_cifar10("imagenet", seed=settings.seed)
    recipe = dataclasses.replace(
        recipe,
        train=dataclasses.replace(recipe.train, epochs=settings.pretrain_epochs),
        train_fraction=settings.pretrain_fraction,
    )
    model = get_trained(recipe, device=device)
    digest = weights_sha256(model.state_dict())
    fraction = settings.pretrain_fraction
    share = "" if fraction >= 1 else f" ({percent(fraction, 0)} of it)"
    label = (
        f"advlab: torchvision ResNet-18 trained by advlab on CIFAR-10{share} for "
        f"{settings.pretrain_epochs} epochs (model store key {recipe.key()}); NOT ImageNet"
    )
    return resnet18_backbone(model, name=SELF_PRETRAINED, weights=label, digest=digest)
