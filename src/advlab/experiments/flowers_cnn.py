"""`flowers-cnn`: seed 004 Part A - the baseline and Mk-1 to Mk-6 CNNs on Oxford Flowers-17.

Trains each network of `advlab.models.flowers` with plain SGD (lr 0.01, Keras' SGD: no
momentum) on the 1,020 training images, and, like the report, picks the epoch of minimum
validation loss and reports train/validation loss and accuracy there. Choosing the epoch on the
validation images makes their accuracy optimistic, so the validation images are split in two,
stratified: the selection half picks the epoch, and the held-out half, which the selection
never saw, gives the accuracy of the chosen weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from advlab.classic.ensemble import held_out_split
from advlab.data import load_dataset
from advlab.errors import ConfigError
from advlab.experiments.base import EXPERIMENTS, Context, Experiment
from advlab.models import ModelWrapper, create_model
from advlab.models.flowers import ARCHITECTURES, minimum_size
from advlab.report import Report, percent
from advlab.report.figures import learning_curves
from advlab.runs import Run
from advlab.train import TrainConfig, evaluate, fit

log = logging.getLogger(__name__)

REPORT_VAL_ACCURACY = {"baseline": 0.541, "mk1": 0.526, "mk2": 0.461, "mk3": 0.455}
"""Table 2 of the report: validation accuracy at the epoch of minimum validation loss."""


@dataclass(frozen=True)
class FlowersCNNConfig:
    """CPU defaults: all seven networks at 72 x 72 (the smallest common size above Mk-5's 66)
    for 20 epochs; the report's setting, for a GPU: ``--set image_size=128 --set epochs=50``.
    """

    models: tuple[str, ...] = tuple(ARCHITECTURES)
    image_size: int = 72
    epochs: int = 20
    lr: float = 0.01
    momentum: float = 0.0  # Keras' SGD default
    batch_size: int = 32
    held_out: float = 0.5  # share of the validation images kept from the epoch selection
    seed: int = 0


def _check(cfg: FlowersCNNConfig) -> None:
    unknown = [m for m in cfg.models if m not in ARCHITECTURES]
    if unknown or not cfg.models:
        raise ConfigError(f"models: expected a non-empty list of {sorted(ARCHITECTURES)}, "
                          f"found {list(cfg.models)}")  # fmt: skip
    small = [m for m in cfg.models if minimum_size(m) > cfg.image_size]
    if small:
        raise ConfigError(f"image_size: {cfg.image_size} is too small for {small} (no padding); "
                          f"use >= {max(minimum_size(m) for m in small)} or leave them out")
    if cfg.epochs < 1:
        raise ConfigError(f"epochs: expected an int >= 1, found {cfg.epochs}")
    if not 0 < cfg.held_out < 1:
        raise ConfigError(f"held_out: expected a share in (0, 1), found {cfg.held_out}")


def execute(cfg: FlowersCNNConfig, ctx: Context) -> dict[str, Any]:
    _check(cfg)
    device = torch.device(ctx.device)
    train = load_dataset("flowers17", "train", image_size=cfg.image_size)
    val = load_dataset("flowers17", "val", image_size=cfg.image_size)
    select, held = held_out_split(val.labels, cfg.held_out, seed=cfg.seed)
    x, y = train.tensors(device)
    xs, ys = val.subset(select).tensors(device)
    xh, yh = val.subset(held).tensors(device)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                       momentum=cfg.momentum, early_stopping=cfg.epochs, seed=cfg.seed)  # fmt: skip
    out: dict[str, Any] = {"n_train": len(y), "n_selection": len(ys), "n_held_out": len(yh),
                           "models": {}}  # fmt: skip
    for name in cfg.models:
        torch.manual_seed(cfg.seed)
        net = create_model(f"flowers_{name}", image_size=cfg.image_size)
        model = ModelWrapper(net).to(device)
        log.info("flowers-cnn: training %s (%d epochs)", name, cfg.epochs)
        with ctx.timed(f"train {name}"):
            history = fit(model, (x, y), tcfg, val=(xs, ys), progress=ctx.progress)
        best = history.best_epoch
        assert best is not None  # fit had validation data
        _, held_acc = evaluate(model, xh, yh)  # early stopping restored the best epoch
        out["models"][name] = {
            "parameters": sum(p.numel() for p in net.parameters()),
            "parameters_128": ARCHITECTURES[name].parameters,
            "best_epoch": best + 1,
            "train_loss": history.train_loss[best], "train_acc": history.train_acc[best],
            "val_loss": history.val_loss[best], "val_acc": history.val_acc[best],
            "held_out_acc": held_acc, "history": history.as_dict(),
            "seconds": ctx.timing[f"train {name}"],
        }  # fmt: skip
    return out


def report(cfg: FlowersCNNConfig, metrics: dict[str, Any], run: Run) -> Report:
    rep = Report("Flowers-17 CNNs: baseline and Mk-1 to Mk-6 (seed 004, Part A)", run.path)
    total = sum(r["seconds"] for r in metrics["models"].values())
    rep.intro(
        f"Each network trained from scratch with SGD (lr {cfg.lr}, momentum {cfg.momentum:g}, "
        f"batch {cfg.batch_size}) for {cfg.epochs} epochs on the {metrics['n_train']} training "
        f"images at {cfg.image_size} x {cfg.image_size} ({total / 60:.1f} min in all). The epoch "
        f"of minimum loss on {metrics['n_selection']} of the validation images is kept, as in "
        f"the report; that choice makes their accuracy optimistic, so the other "
        f"{metrics['n_held_out']} validation images, never used to choose, give the held-out "
        f"accuracy. The report's setting (128 x 128, 50 epochs): `advlab run flowers-cnn --set "
        f"image_size=128 --set epochs=50`. Rerun with `advlab run flowers-cnn --seed "
        f"{cfg.seed}`."
    )  # fmt: skip
    rows = []
    for name, r in metrics["models"].items():
        ref = REPORT_VAL_ACCURACY.get(name)
        rows.append({
            "model": name, f"parameters ({cfg.image_size} px)": f"{r['parameters']:,}",
            "parameters (128 px)": f"{r['parameters_128']:,}", "epoch": r["best_epoch"],
            "train loss": f"{r['train_loss']:.3f}", "train acc.": f"{r['train_acc']:.3f}",
            "val loss": f"{r['val_loss']:.3f}", "val acc.": f"{r['val_acc']:.3f}",
            "held-out acc.": f"{r['held_out_acc']:.3f}",
            "report val acc.": "-" if ref is None else f"{ref:.3f}",
            "minutes": f"{r['seconds'] / 60:.1f}",
        })  # fmt: skip
    rep.table("Results", rows, caption="At the epoch of minimum validation loss (the report's "
              "table 2 gives its validation accuracy for the first four).")  # fmt: skip
    best = max(metrics["models"].items(), key=lambda kv: kv[1]["held_out_acc"])
    rep.text("Results", f"Best on the held-out images: {best[0]}, "
             f"{percent(best[1]['held_out_acc'])}.")  # fmt: skip
    for name, r in metrics["models"].items():
        fig = learning_curves(run.figure(f"curves_{name}.png"), r["history"],
                              title=f"{name}: loss and accuracy", val_label="selection")
        rep.figure("Learning curves", fig, f"{name}; dotted: the epoch kept.")
    return rep


EXPERIMENTS.add(
    "flowers-cnn",
    Experiment(name="flowers-cnn", summary="seed 004 Part A: the baseline and Mk-1..Mk-6 CNNs "
               "on Flowers-17, epoch of minimum validation loss, held-out accuracy",
               config=FlowersCNNConfig, execute=execute, report=report),
    "seed 004 Part A: the seven Flowers-17 CNNs",
)
