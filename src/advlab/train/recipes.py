"""The training core's reference recipes, for experiments that attack or defend their models.

`resnet18_cifar10("imagenet")` is recipe A of benchmarks/README.md (torchvision's unmodified
ResNet-18 on 32 x 32 CIFAR-10, 20 epochs on CPU: 83.11% test accuracy); `"cifar"` is recipe B
(3 x 3 stem without max-pool, 40 epochs, written for a GPU). A model trained by the
`advlab train` command of either recipe is found in the store under the same key.

`flowers17(name, ...)` is how seed 004 trains its Flowers-17 CNNs; the flowers experiments share
it, so that a network one of them trained is found by the others (the ensemble reuses the
augmentation study's Mk-2 and Mk-3).
"""

from __future__ import annotations

from advlab.errors import ConfigError
from advlab.train.store import ModelRecipe
from advlab.train.trainer import TrainConfig

STEMS = ("imagenet", "cifar")


def resnet18_cifar10(stem: str = "imagenet", *, seed: int = 0) -> ModelRecipe:
    """The stored ResNet-18 on CIFAR-10 for `stem` ("imagenet": recipe A, "cifar": recipe B)."""
    if stem == "imagenet":
        train = TrainConfig(epochs=20, batch_size=128, lr=0.1, nesterov=True, weight_decay=5e-4,
                            schedule="onecycle", augment="crop_flip", seed=seed)  # fmt: skip
    elif stem == "cifar":
        train = TrainConfig(epochs=40, batch_size=512, lr=0.4, nesterov=True, weight_decay=5e-4,
                            schedule="onecycle", augment="crop_flip", label_smoothing=0.1,
                            seed=seed)  # fmt: skip
    else:
        raise ConfigError(f"stem: expected one of {STEMS}, found {stem!r}")
    return ModelRecipe("resnet18", "cifar10", {"stem": stem}, train)


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
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                        early_stopping=epochs, augment=augment, cpu_bf16=cpu_bf16,
                        seed=seed)  # fmt: skip
    return ModelRecipe(f"flowers_{model}", "flowers17", {}, train, normalize=False,
                       data_options={"image_size": image_size}, held_out=held_out,
                       train_fraction=train_fraction)  # fmt: skip
