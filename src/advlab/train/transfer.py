"""Transfer learning from a pretrained backbone: cached features, a dense top, two phases.

A `Backbone` is a pretrained network cut in two: `frozen`, the part that never trains, and
`top`, the last block(s) that phase B of fine-tuning unfreezes, ending in a flat feature vector.
Since the frozen part is fixed (batch norms in inference mode, as Keras runs frozen layers) and
the images are not augmented, its output is computed once per image and cached on disk
(`cached_features`); both phases then train on those cached tensors, which is exactly what
training through the frozen layers would compute, at a fraction of the cost.

- Feature extraction: ``top(frozen(x))`` flattened feeds scikit-learn classifiers
  (`advlab.classic.tabular`).
- Phase A (`fine_tune`, ``phase="A"``): the backbone frozen, a `TransferHead` (a dense layer of
  512 units, optional batch norm and dropout, the softmax layer) trained on the top's features.
- Phase B (``phase="B"``): the top unfrozen and trained with the head at a lower rate, its
  batch norms kept in inference mode (`InferenceNorms`), so that the head starts phase B on
  the features it learned in phase A.

`resnet18_backbone` cuts a torchvision ResNet-18 (any weights, e.g. one advlab trained on
CIFAR-10) after ``layer3``; its provenance label says where the weights came from.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advlab.errors import ConfigError
from advlab.fileio import atomic_path, cache_dir
from advlab.models.wrapper import ModelWrapper, eval_mode
from advlab.train.trainer import History, TrainConfig, fit
from advlab.validation import check_fraction, check_int, check_positive

log = logging.getLogger(__name__)


class Normalize(nn.Module):
    """``(x - mean) / std`` with per-channel buffers, or the identity when they are None."""

    def __init__(self, mean: torch.Tensor | None, std: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("mean", None if mean is None else mean.detach().clone())
        self.register_buffer("std", None if std is None else std.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean, self.std
        if not isinstance(mean, torch.Tensor) or not isinstance(std, torch.Tensor):
            return x
        return (x - mean) / std


@dataclass
class Backbone:
    """A pretrained feature extractor in two parts.

    Attributes:
        name: Short name for tables and cache keys.
        frozen: Pixels in [0, 1] (N, 3, H, W) to an intermediate tensor; never trained.
        top: That tensor to flat features (N, D); trained in phase B.
        weights: Where the weights came from, said in every report (e.g. ``"advlab:
            resnet18 trained on cifar10 (store key ...)"``, ``"imagenet:<file>"``).
        digest: sha256 of the weights (for the feature cache's key).
    """

    name: str
    frozen: nn.Module
    top: nn.Module
    weights: str
    digest: str

    def features(self, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """``top(frozen(x))``, in eval mode without gradients, chunk by chunk."""
        return run_chunked(nn.Sequential(self.frozen, self.top), x, batch_size)


def run_chunked(module: nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    """`module(x)` in eval mode without gradients, `batch_size` inputs at a time."""
    if batch_size < 1:
        raise ConfigError(f"batch_size: expected an int >= 1, found {batch_size}")
    with eval_mode(module), torch.no_grad():
        return torch.cat([module(chunk) for chunk in x.split(batch_size)])


def resnet18_backbone(
    model: ModelWrapper, *, name: str = "resnet18", weights: str = "unrecorded", digest: str = ""
) -> Backbone:
    """Cut a `ModelWrapper` around torchvision's ResNet-18 after ``layer3``: `frozen` is the
    wrapper's normalisation, the stem and layers 1-3; `top` is ``layer4``, global average
    pooling and flattening (512 features). The modules are shared with `model`, not copied."""
    net: Any = model.inner
    needed = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    if not all(hasattr(net, n) for n in needed):
        raise ConfigError(
            f"resnet18_backbone: expected a torchvision ResNet inside the "
            f"wrapper, found {type(net).__name__}"
        )
    frozen = nn.Sequential(
        Normalize(model.mean, model.std),
        net.conv1,
        net.bn1,
        net.relu,
        net.maxpool,
        net.layer1,
        net.layer2,
        net.layer3,
    )
    top = nn.Sequential(net.layer4, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    for p in frozen.parameters():
        p.requires_grad_(False)
    return Backbone(name, frozen, top, weights, digest)


def cached_features(
    module: nn.Module,
    x: torch.Tensor,
    key: str,
    *,
    batch_size: int = 128,
    folder: Path | None = None,
) -> torch.Tensor:
    """`module(x)` (eval mode), read from ``<cache>/features/<key>-<hash of x>.npy`` when an
    earlier call stored it, else computed and stored (atomically).

    `key` must name the module and its weights (e.g. the backbone's digest): the file name adds
    a hash of the inputs, so other images never hit the same file.
    """
    root = folder if folder is not None else cache_dir() / "features"
    data_hash = hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    path = root / f"{key}-{data_hash}.npy"
    if path.is_file():
        try:
            out = np.load(path, allow_pickle=False)
            log.info("features from %s", path)
            return torch.from_numpy(out).to(x.device)
        except (OSError, ValueError):
            log.warning("%s: unreadable feature cache; computing it again", path)
    out_t = run_chunked(module, x, batch_size)
    root.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.save(f, out_t.cpu().numpy(), allow_pickle=False)
    return out_t


class TransferHead(nn.Module):
    """The dense top of seed 004's fine-tuning: flat features -> `hidden` units (ReLU), batch
    norm and dropout when asked, -> `num_classes` logits."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden: int = 512,
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout: expected a rate in [0, 1), found {dropout!r}")
        layers: list[nn.Module] = [nn.Linear(in_features, hidden)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(hidden, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class InferenceNorms(nn.Module):
    """`module` with its batch norms kept in inference mode, also while training: their scale
    and shift still learn, their running statistics stay those of the pretrained network
    (Keras' advice for fine-tuning, and what its frozen-then-unfrozen layers do)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def train(self, mode: bool = True) -> InferenceNorms:
        super().train(mode)
        for m in self.module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


@dataclass(frozen=True)
class FineTuneResult:
    """What `fine_tune` returns: the phase A and phase B histories (B None when skipped) and
    the top the head now sits on (a trained copy of the backbone's after phase B)."""

    phase_a: History
    phase_b: History | None
    top: nn.Module


def fine_tune(
    backbone: Backbone,
    head: TransferHead,
    frozen_train: tuple[torch.Tensor, torch.Tensor],
    frozen_val: tuple[torch.Tensor, torch.Tensor],
    phase_a: TrainConfig,
    phase_b: TrainConfig | None,
    *,
    progress: bool | None = None,
) -> FineTuneResult:
    """Train `head` on the frozen backbone (phase A), then `backbone.top` with it (phase B).

    Args:
        backbone: Left as it is: phase B trains a copy of its `top`.
        head: Trained in both phases (in place).
        frozen_train, frozen_val: ``(backbone.frozen(x), y)`` for the training and validation
            images, e.g. from `cached_features`.
        phase_a, phase_b: Training settings of each phase (None: no phase B). With
            ``early_stopping``, each phase ends with the weights of its epoch of minimum
            validation loss.

    Returns:
        Both histories and the top. Phase A trains on ``top(frozen)`` computed once, since the
        top is frozen then.
    """
    top_train = run_chunked(backbone.top, frozen_train[0])
    top_val = run_chunked(backbone.top, frozen_val[0])
    history_a = fit(
        head, (top_train, frozen_train[1]), phase_a, val=(top_val, frozen_val[1]), progress=progress
    )
    if phase_b is None:
        return FineTuneResult(history_a, None, backbone.top)
    top = copy.deepcopy(backbone.top)
    for p in top.parameters():
        p.requires_grad_(True)
    history_b = fit(
        nn.Sequential(InferenceNorms(top), head),
        frozen_train,
        phase_b,
        val=frozen_val,
        progress=progress,
    )
    return FineTuneResult(history_a, history_b, top)


@dataclass(frozen=True)
class TransferSettings:
    """How seed 004 Part C fine-tunes a transfer model (the CPU defaults of `flowers-transfer`,
    which `flowers-attacks` shares): the self-pretrained backbone, the images, both phases.

    ``pretrain_epochs`` and ``pretrain_fraction`` define the ResNet-18 pre-training; the
    defaults are the training core's recipe A (the stored model is reused), smaller values
    train a quick one (tests). Phase B is cut from the report's 50 epochs to 10 on CPU (each
    epoch trains layer4's 8.4 M weights): ``--set phase_b_epochs=50`` on a GPU.
    """

    image_size: int = 64
    hidden: int = 512
    phase_a_epochs: int = 25
    phase_a_lr: float = 1e-3
    phase_b_epochs: int = 10
    phase_b_lr: float = 1e-4
    batch_size: int = 32
    held_out: float = 0.5
    pretrain_epochs: int = 20
    pretrain_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, least in (("phase_a_epochs", 1), ("phase_b_epochs", 0), ("pretrain_epochs", 1)):
            check_int(name, getattr(self, name), minimum=least)
        check_fraction("held_out", self.held_out, zero=False, one=False)
        check_fraction("pretrain_fraction", self.pretrain_fraction, zero=False)
        for name in ("image_size", "hidden", "batch_size"):
            check_int(name, getattr(self, name), minimum=1)
        check_positive("phase_a_lr", self.phase_a_lr)
        check_positive("phase_b_lr", self.phase_b_lr)


def fine_tune_configuration(
    settings: TransferSettings,
    backbone: Backbone,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    held: tuple[torch.Tensor, torch.Tensor],
    *,
    num_classes: int,
    optimizer: str,
    batch_norm: bool,
    dropout: float,
    phase_b_epochs: int,
) -> tuple[dict[str, Any], nn.Module]:
    """Phases A and B of one configuration of the report's grid (optimizer, batch norm,
    dropout), on the backbone's frozen features.

    Args:
        settings: Epochs, learning rates, batch size, head width and seed.
        backbone: The pretrained network, cut in two.
        train, val, held: ``(backbone.frozen(x), y)`` of the training images, the validation
            images that choose the epoch, and the held-out ones that give the accuracy.
        num_classes: Classes of the data (the head's outputs).
        optimizer: ``adam`` or ``sgd`` (no momentum, as Keras' SGD).
        batch_norm, dropout: The head's options.
        phase_b_epochs: Epochs of phase B (0: phase A only).

    Returns:
        Its row of results (both histories, validation and held-out accuracy) and the model
        from the backbone's frozen features to the logits (the trained top and head).
    """
    torch.manual_seed(settings.seed)
    width = run_chunked(backbone.top, train[0][:2]).flatten(1).shape[1]
    head = TransferHead(
        width, num_classes, hidden=settings.hidden, batch_norm=batch_norm, dropout=dropout
    ).to(train[0].device)
    base = TrainConfig(
        optimizer=optimizer, momentum=0.0, batch_size=settings.batch_size, seed=settings.seed
    )
    phase_a = replace(
        base,
        epochs=settings.phase_a_epochs,
        lr=settings.phase_a_lr,
        early_stopping=settings.phase_a_epochs,
    )
    phase_b = None
    if phase_b_epochs > 0:
        phase_b = replace(
            base, epochs=phase_b_epochs, lr=settings.phase_b_lr, early_stopping=phase_b_epochs
        )
    log.info("fine-tuning %s %s bn=%s dropout=%g", backbone.name, optimizer, batch_norm, dropout)
    result = fine_tune(backbone, head, train, val, phase_a, phase_b, progress=False)
    model = nn.Sequential(result.top, head, nn.Identity())
    with torch.no_grad():
        logits = run_chunked(model, held[0])
    row: dict[str, Any] = {
        "optimizer": optimizer, "batch_norm": batch_norm, "dropout": dropout,
        "phase_a": result.phase_a.as_dict(),
        "phase_b": None if result.phase_b is None else result.phase_b.as_dict(),
        "held_out_acc": float((logits.argmax(1) == held[1]).float().mean()),
    }  # fmt: skip
    last = result.phase_b or result.phase_a
    row["val_acc"] = last.val_acc[last.best_epoch or 0]
    row["phase_a_val_acc"] = result.phase_a.val_acc[result.phase_a.best_epoch or 0]
    return row, model


__all__ = [
    "Backbone",
    "FineTuneResult",
    "InferenceNorms",
    "Normalize",
    "TransferHead",
    "TransferSettings",
    "cached_features",
    "fine_tune",
    "fine_tune_configuration",
    "resnet18_backbone",
    "run_chunked",
]
