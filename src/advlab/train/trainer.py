"""A small supervised trainer: minibatch SGD/Adam on tensors that fit in memory.

The data path follows airbench: the whole dataset sits on the device as one tensor and batches
are index slices of it; no DataLoader for data that small.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from advlab.errors import ConfigError, RunError
from advlab.progress import enabled as progress_enabled
from advlab.train.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of `fit`.

    Args:
        epochs: Passes over the training set.
        batch_size: Examples per step.
        lr: Learning rate.
        optimizer: ``sgd`` or ``adam``.
        momentum: SGD momentum (0 for plain SGD).
        weight_decay: L2 penalty coefficient, applied by the optimizer.
        seed: Seed of the shuffling generator.
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(
                f"TrainConfig: expected epochs >= 0, batch_size >= 1, lr > 0; got {self}"
            )
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(
                f"TrainConfig.optimizer: expected sgd or adam, got {self.optimizer!r}"
            )


@dataclass
class History:
    """Per-epoch metrics of a `fit` call."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[float]]:
        return asdict(self)


EpochCallback = Callable[[int, History], None]


def _check_resumable(path: Path, state: dict[str, object], cfg: TrainConfig) -> None:
    """A checkpoint may only be continued with the same hyperparameters (epochs may grow)."""
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise RunError(f"{path}: no training config in the checkpoint; cannot resume from it")
    now = asdict(cfg)
    differ = sorted(k for k in now if k != "epochs" and saved.get(k) != now[k])
    if differ:
        pairs = ", ".join(f"{k}: saved {saved.get(k)!r}, now {now[k]!r}" for k in differ)
        raise RunError(f"{path}: saved with other hyperparameters ({pairs}); cannot resume")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on (x, y), in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        target = y[start : start + batch_size]
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    model.train(was_training)
    n = max(len(x), 1)
    return loss_sum / n, correct / n


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool | None = None,
    checkpoint: Path | None = None,
) -> History:
    """Train `model` in place on `train` = (inputs, int64 labels), both on the model's device.

    With `checkpoint`, the model, optimizer, shuffling state and history are saved there after
    every epoch, and a call that finds a checkpoint continues after its last epoch; the result
    equals an uninterrupted run's.

    Returns:
        The per-epoch `History` (train loss/accuracy measured during the epoch; validation
        after it).
    """
    x, y = train
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(
            f"fit: expected equally many inputs and labels (> 0), got {len(x)}, {len(y)}"
        )
    opt = make_optimizer(model, cfg)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    history = History()
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, map_location=x.device)
        _check_resumable(checkpoint, state, cfg)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise RunError(f"{checkpoint}: does not fit this model ({exc})") from exc
        gen.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if x.is_cuda and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), x.device)
        history = History(**state["history"])
        start = int(state["epoch"]) + 1
        log.info("resuming training from %s after epoch %d", checkpoint, start)
    steps = math.ceil(len(x) / cfg.batch_size)
    bar = None
    if progress or (progress is None and progress_enabled()):
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.epochs * steps, initial=start * steps, desc="train", unit="step", leave=False
        )
    for epoch in range(start, cfg.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen).to(x.device)
        loss_sum = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device, dtype=torch.long)
        for step in range(steps):
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            logits = model(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y[idx]).sum()
            if bar is not None:
                bar.update()
        history.train_loss.append(float(loss_sum) / len(x))
        history.train_acc.append(int(correct) / len(x))
        if val is not None:
            vl, va = evaluate(model, *val)
            history.val_loss.append(vl)
            history.val_acc.append(va)
        if not math.isfinite(history.train_loss[-1]):
            log.warning(
                "epoch %d: training loss is %s; stopping", epoch + 1, history.train_loss[-1]
            )
            break
        log.info(
            "epoch %d/%d train loss %.4f acc %.4f%s",
            epoch + 1,
            cfg.epochs,
            history.train_loss[-1],
            history.train_acc[-1],
            f" val loss {history.val_loss[-1]:.4f} acc {history.val_acc[-1]:.4f}" if val else "",
        )
        if checkpoint is not None:
            extra = {"cuda_rng": torch.cuda.get_rng_state(x.device)} if x.is_cuda else {}
            save_checkpoint(
                checkpoint,
                {
                    **extra,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "generator": gen.get_state(),
                    # Dropout and other in-model randomness draw from the global generator.
                    "torch_rng": torch.get_rng_state(),
                    "history": history.as_dict(),
                    "epoch": epoch,
                    "config": asdict(cfg),
                },
            )
        if on_epoch is not None:
            on_epoch(epoch, history)
    if bar is not None:
        bar.close()
    model.eval()
    return history
