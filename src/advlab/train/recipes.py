"""The training core's reference recipes, for experiments that attack or defend their models.

`resnet18_cifar10("imagenet")` is recipe A of benchmarks/README.md (torchvision's unmodified
ResNet-18 on 32 x 32 CIFAR-10, 20 epochs on CPU: 83.11% test accuracy); `"cifar"` is recipe B
(3 x 3 stem without max-pool, 40 epochs, written for a GPU). A model trained by the
`advlab train` command of either recipe is found in the store under the same key.
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
