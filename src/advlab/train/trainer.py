"""A small supervised trainer: minibatch SGD/Adam on tensors that fit in memory.

The data path follows airbench: the whole dataset sits on the device as one tensor, batches are
index slices of it and augmentation is a whole-batch tensor op on the device; no DataLoader for
data that small. Mixed precision and channels_last apply on CUDA, and on CPU with ``cpu_bf16``.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LRScheduler,
    OneCycleLR,
    StepLR,
)

from advlab.errors import ConfigError, RunError
from advlab.progress import enabled as progress_enabled
from advlab.train.augment import (
    AFFINE_PRESETS,
    AUGMENTATIONS,
    affine_params,
    apply_affine,
    apply_crop_flip,
    crop_flip_params,
)
from advlab.train.checkpoint import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("none", "step", "exponential", "cosine", "onecycle")
# These two are stepped after every optimizer step and span the whole run, so their shape
# depends on `epochs`; step and exponential decay once per epoch.
PER_STEP_SCHEDULES = ("cosine", "onecycle")
CROP_PADDING = 4  # pixels, the CIFAR standard


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of `fit`. The defaults train with constant-lr SGD and momentum 0.9.

    Args:
        epochs: Passes over the training set.
        batch_size: Examples per step.
        lr: Learning rate (the peak learning rate with ``schedule="onecycle"``).
        optimizer: ``sgd`` or ``adam``.
        momentum: SGD momentum (0 for plain SGD); Adam ignores it.
        weight_decay: L2 penalty coefficient, applied by the optimizer.
        seed: Seed of the generator behind shuffling and augmentation.
        nesterov: Nesterov momentum (SGD with momentum > 0 only).
        schedule: Learning-rate schedule, one of ``none``, ``step`` (multiply by `gamma` every
            `step_size` epochs), ``exponential`` (multiply by `gamma` every epoch), ``cosine``
            (cosine annealing from `lr` to 0 over all steps of the run) and ``onecycle``
            (torch's `OneCycleLR` over all steps, peak `lr`, momentum not cycled).
        step_size: Epochs between decays of the ``step`` schedule.
        gamma: Decay factor of the ``step`` and ``exponential`` schedules.
        label_smoothing: Label smoothing of the training loss (validation loss is unsmoothed).
        early_stopping: Patience in epochs on the validation loss, or None for no early
            stopping. Training stops once that many epochs pass without a new minimum, and the
            weights of the epoch with the minimum validation loss are restored at the end.
        augment: ``none``, ``crop_flip`` (random crop with 4-pixel zero padding and horizontal
            flip, for CIFAR-like images), or one of the random affine presets of
            `advlab.train.augment.AFFINE_PRESETS` (``face`` for faces; ``zoom``, ``flips``,
            ``mix``: seed 004's Flowers-17 configurations #1-#3), drawn per batch.
        amp: Mixed precision on CUDA (bf16 where supported, otherwise fp16 with a gradient
            scaler); on CPU see ``cpu_bf16``.
        cpu_bf16: bfloat16 autocast for CPU training, with the model and image batches in
            channels_last format (off by default; weights and optimiser stay float32). Whether
            it pays depends on the CPU and the model: on a 2-core Sapphire Rapids machine (AMX)
            it made the Flowers-17 CNNs at 72x72 about 4x faster per epoch, and ResNet-18 on
            32x32 CIFAR no faster (`benchmarks/resnet_cpu_bf16.py`). `cpu_bf16_supported()`
            says whether the CPU has native bfloat16 kernels.
        channels_last: channels_last memory format for the model and image batches on CUDA
            (on CPU, only together with ``cpu_bf16``).
        compile: Train through ``torch.compile(model)``.
    """

    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.01
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    nesterov: bool = False
    schedule: str = "none"
    step_size: int = 30
    gamma: float = 0.1
    label_smoothing: float = 0.0
    early_stopping: int | None = None
    augment: str = "none"
    amp: bool = True
    cpu_bf16: bool = False
    channels_last: bool = True
    compile: bool = False

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("epochs", _is_int(self.epochs) and self.epochs >= 0, "an int, epochs >= 0"),
            (
                "batch_size",
                _is_int(self.batch_size) and self.batch_size >= 1,
                "an int, batch_size >= 1",
            ),
            ("lr", _is_number(self.lr) and self.lr > 0, "a finite number, lr > 0"),
            ("optimizer", self.optimizer in OPTIMIZERS, " or ".join(OPTIMIZERS)),
            (
                "momentum",
                _is_number(self.momentum) and 0 <= self.momentum < 1,
                "a number, 0 <= momentum < 1",
            ),
            (
                "weight_decay",
                _is_number(self.weight_decay) and self.weight_decay >= 0,
                "a finite number, weight_decay >= 0",
            ),
            ("seed", _is_int(self.seed), "an int"),
            ("nesterov", isinstance(self.nesterov, bool), "True or False"),
            ("schedule", self.schedule in SCHEDULES, f"one of {', '.join(SCHEDULES)}"),
            (
                "step_size",
                _is_int(self.step_size) and self.step_size >= 1,
                "an int, step_size >= 1 (epochs)",
            ),
            (
                "gamma",
                _is_number(self.gamma) and 0 < self.gamma <= 1,
                "a number, 0 < gamma <= 1",
            ),
            (
                "label_smoothing",
                _is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
                "a number, 0 <= label_smoothing < 1",
            ),
            (
                "early_stopping",
                self.early_stopping is None
                or (_is_int(self.early_stopping) and self.early_stopping >= 1),
                "None or an int >= 1 (patience in epochs)",
            ),
            ("augment", self.augment in AUGMENTATIONS, f"one of {', '.join(AUGMENTATIONS)}"),
            ("amp", isinstance(self.amp, bool), "True or False"),
            ("cpu_bf16", isinstance(self.cpu_bf16, bool), "True or False"),
            ("channels_last", isinstance(self.channels_last, bool), "True or False"),
            ("compile", isinstance(self.compile, bool), "True or False"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"TrainConfig.{name}: expected {expected}, got {getattr(self, name)!r}"
                )
        if self.nesterov and self.optimizer != "sgd":
            raise ConfigError(
                f"TrainConfig.nesterov: expected False with optimizer {self.optimizer!r} "
                "(Nesterov momentum is an SGD option), got True"
            )
        if self.nesterov and self.momentum == 0:
            raise ConfigError(
                "TrainConfig.nesterov: expected momentum > 0 with nesterov=True, got momentum=0"
            )


@dataclass
class History:
    """Per-epoch metrics of a `fit` call; epochs are counted from 0.

    Attributes:
        train_loss, train_acc: Measured during each epoch (loss with label smoothing, if any).
        val_loss, val_acc: Measured after each epoch, when `fit` was given validation data.
        lr: Learning rate at the start of each epoch (of the first parameter group).
        best_epoch: Epoch of the minimum validation loss (the first one on ties), None without
            validation data. With early stopping, the trained model holds this epoch's weights.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    best_epoch: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


EpochCallback = Callable[[int, History], None]
# A training objective: (model, inputs, labels) -> (the loss to minimise, the logits of the
# batch it trained on, for the running accuracy). `advlab.defenses` builds adversarial ones.
Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def _check_resumable(path: Path, state: dict[str, object], cfg: TrainConfig) -> None:
    """A checkpoint may only be continued with the same hyperparameters (epochs may grow).

    Fields missing from an older checkpoint count as their defaults, the behaviour it was
    trained with. Epochs may not change under a schedule that spans the whole run.
    """
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise RunError(f"{path}: no training config in the checkpoint; cannot resume from it")
    now = asdict(cfg)
    differ = sorted(k for k in now if k != "epochs" and saved.get(k, _DEFAULTS[k]) != now[k])
    if differ:
        pairs = ", ".join(
            f"{k}: saved {saved.get(k, _DEFAULTS[k])!r}, now {now[k]!r}" for k in differ
        )
        raise RunError(f"{path}: saved with other hyperparameters ({pairs}); cannot resume")
    if cfg.schedule in PER_STEP_SCHEDULES and saved.get("epochs") != cfg.epochs:
        raise RunError(
            f"{path}: saved with epochs {saved.get('epochs')!r}, now {cfg.epochs!r}; the "
            f"{cfg.schedule!r} schedule spans the whole run, so epochs must match to resume"
        )


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
    )


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int
) -> LRScheduler | None:
    """torch's scheduler for `cfg.schedule`, or None for a constant learning rate.

    ``cosine`` and ``onecycle`` are meant to be stepped after every optimizer step
    (`PER_STEP_SCHEDULES`), ``step`` and ``exponential`` after every epoch.
    """
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "step":
        return StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "exponential":
        return ExponentialLR(opt, gamma=cfg.gamma)
    if cfg.schedule == "cosine" and total > 0:
        return CosineAnnealingLR(opt, T_max=total)
    if cfg.schedule == "onecycle" and total > 0:
        # Momentum stays what the config says: cycling it would override `momentum`.
        return OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, cycle_momentum=False)
    return None


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


def cpu_bf16_supported() -> bool:
    """Whether this CPU has native bfloat16 kernels (AVX512-BF16 or AMX, through oneDNN), so
    that ``TrainConfig(cpu_bf16=True)`` can pay; on other CPUs bfloat16 is emulated and slow."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if device.type == "cpu" and cfg.cpu_bf16:
        return torch.bfloat16
    if not (cfg.amp and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _restore_history(saved: dict[str, Any], cfg: TrainConfig) -> History:
    history = History(**saved)
    # Checkpoints written before `lr` and `best_epoch` existed trained at a constant lr.
    if "lr" not in saved:
        history.lr = [cfg.lr] * len(history.train_loss)
    if "best_epoch" not in saved and history.val_loss:
        history.best_epoch = min(range(len(history.val_loss)), key=history.val_loss.__getitem__)
    return history


def _epochs_without_improvement(history: History) -> int:
    last = len(history.val_loss) - 1
    return last - (history.best_epoch if history.best_epoch is not None else -1)


def fit(
    model: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool | None = None,
    checkpoint: Path | None = None,
    objective: Objective | None = None,
) -> History:
    """Train `model` in place on `train` = (inputs, int64 labels), both on the model's device.

    Each step minimises the cross-entropy of the batch (with ``cfg.label_smoothing``), or
    `objective(model, inputs, labels)` when given (its loss; its logits feed the running
    accuracy). An objective that draws random numbers should draw them from torch's global
    generator, which checkpoints save and restore, so that a resumed run stays exact.

    With `checkpoint`, the model, optimizer, scheduler, random state, best-so-far weights and
    history are saved there (atomically) after every epoch, and a call that finds a checkpoint
    continues after its last epoch; the result equals an uninterrupted run's.

    With ``cfg.early_stopping``, `val` is required; training ends after that many epochs
    without a new minimum of the validation loss, and the model is left with the weights of
    the epoch of the minimum (`History.best_epoch`).

    Returns:
        The per-epoch `History` (train loss/accuracy measured during the epoch; validation
        after it).
    """
    x, y = train
    if len(x) != len(y) or len(x) == 0:
        raise ConfigError(
            f"fit: expected equally many inputs and labels (> 0), got {len(x)}, {len(y)}"
        )
    if cfg.early_stopping is not None and val is None:
        raise ConfigError(
            f"fit: early_stopping={cfg.early_stopping} expected validation data (val=...), "
            "got val=None"
        )
    augment = cfg.augment == "crop_flip"
    affine = AFFINE_PRESETS.get(cfg.augment)
    if (augment or affine is not None) and x.dim() != 4:
        raise ConfigError(
            f"fit: augment={cfg.augment!r} expected images (N, C, H, W), got inputs of shape "
            f"{tuple(x.shape)}"
        )
    channels_last = (
        cfg.channels_last
        and x.dim() == 4
        and (x.device.type == "cuda" or (x.device.type == "cpu" and cfg.cpu_bf16))
    )
    if channels_last:
        model.to(memory_format=torch.channels_last)
    amp_dtype = _amp_dtype(cfg, x.device)
    # bf16 has fp32's range and needs no loss scaling; fp16 does.
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if cfg.compile else model
    steps = math.ceil(len(x) / cfg.batch_size)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg, steps)
    per_step = cfg.schedule in PER_STEP_SCHEDULES
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    history = History()
    best_state: dict[str, torch.Tensor] | None = None
    start = 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, map_location=x.device)
        _check_resumable(checkpoint, state, cfg)
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            if sched is not None:
                sched.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise RunError(f"{checkpoint}: does not fit this model ({exc})") from exc
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        best_state = state.get("best_model")
        gen.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if x.is_cuda and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), x.device)
        history = _restore_history(state["history"], cfg)
        start = int(state["epoch"]) + 1
        log.info("resuming training from %s after epoch %d", checkpoint, start)
    bar = None
    if progress or (progress is None and progress_enabled()):
        from tqdm.auto import tqdm

        bar = tqdm(
            total=cfg.epochs * steps, initial=start * steps, desc="train", unit="step", leave=False
        )
    for epoch in range(start, cfg.epochs):
        if cfg.early_stopping is not None and (
            _epochs_without_improvement(history) >= cfg.early_stopping
        ):
            log.info(
                "early stopping before epoch %d: no lower validation loss in %d epochs",
                epoch + 1,
                cfg.early_stopping,
            )
            break
        model.train()
        history.lr.append(float(opt.param_groups[0]["lr"]))
        order = torch.randperm(len(x), generator=gen).to(x.device)
        if augment:
            # One draw per epoch, in the shuffled order: one host-to-device copy, no sync per step.
            dy, dx, flip = crop_flip_params(
                len(x), padding=CROP_PADDING, generator=gen, device=x.device
            )
        loss_sum = torch.zeros((), device=x.device)
        correct = torch.zeros((), device=x.device, dtype=torch.long)
        for step in range(steps):
            batch = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
            idx = order[batch]
            xb, yb = x[idx], y[idx]
            if augment:
                xb = apply_crop_flip(xb, dy[batch], dx[batch], flip[batch], padding=CROP_PADDING)
            elif affine is not None:
                xb = apply_affine(
                    xb, affine_params(len(xb), affine, generator=gen, device=x.device)
                )
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with (
                torch.autocast(x.device.type, dtype=amp_dtype)
                if amp_dtype is not None
                else contextlib.nullcontext()
            ):
                if objective is None:
                    logits = forward(xb)
                    loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
                else:
                    loss, logits = objective(model, xb, yb)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            if per_step and sched is not None:
                sched.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == yb).sum()
            if bar is not None:
                bar.update()
        history.train_loss.append(float(loss_sum) / len(x))
        history.train_acc.append(int(correct) / len(x))
        if val is not None:
            vl, va = evaluate(model, *val)
            history.val_loss.append(vl)
            history.val_acc.append(va)
            if history.best_epoch is None or vl < history.val_loss[history.best_epoch]:
                history.best_epoch = epoch
                if cfg.early_stopping is not None:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if not math.isfinite(history.train_loss[-1]):
            log.warning(
                "epoch %d: training loss is %s; stopping", epoch + 1, history.train_loss[-1]
            )
            break
        if sched is not None and not per_step:
            sched.step()
        log.info(
            "epoch %d/%d train loss %.4f acc %.4f%s",
            epoch + 1,
            cfg.epochs,
            history.train_loss[-1],
            history.train_acc[-1],
            f" val loss {history.val_loss[-1]:.4f} acc {history.val_acc[-1]:.4f}" if val else "",
        )
        if checkpoint is not None:
            extra: dict[str, Any] = {}
            if x.is_cuda:
                extra["cuda_rng"] = torch.cuda.get_rng_state(x.device)
            if sched is not None:
                extra["scheduler"] = sched.state_dict()
            if scaler is not None:
                extra["scaler"] = scaler.state_dict()
            if best_state is not None:
                extra["best_model"] = best_state
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
    if cfg.early_stopping is not None and best_state is not None:
        model.load_state_dict(best_state)
        log.info(
            "restored the weights of epoch %s (minimum validation loss)",
            (history.best_epoch or 0) + 1,
        )
    model.eval()
    return history
