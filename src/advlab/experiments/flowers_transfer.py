"""`flowers-transfer`: seed 004 Part C - transfer learning on Oxford Flowers-17.

The report extracts features with four ImageNet backbones (VGG16, Inception-v3, MobileNet,
Xception), fits five scikit-learn classifiers on them (its table 8), and fine-tunes in two
phases: A, the backbone frozen and a dense top of 512 units trained for 25 epochs at 1e-3; B,
the top blocks unfrozen and trained for 50 more epochs at 1e-4, for Adam or SGD, with or
without batch norm and dropout 0.5 (its table 9).

ImageNet weights cannot be downloaded on the machines advlab is developed on. This experiment
loads them when they are there (``advlab weights import FILE``: torchvision's VGG16 and
Inception-v3 files) and otherwise lists those backbones as supported but unmeasured. The whole
pipeline is measured with a backbone advlab pre-trains itself: the training core's ResNet-18 on
CIFAR-10 (recipe A, from the model store), cut after ``layer3``, whose ``layer4`` is the block
phase B unfreezes. Its numbers are labelled as such everywhere: they are not ImageNet transfer
results and are not comparable to the report's.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from advlab.classic.ensemble import held_out_split
from advlab.classic.tabular import CLASSIFIERS, tabular_classifiers
from advlab.data import load_dataset
from advlab.errors import ConfigError, WeightsNotFoundError
from advlab.experiments.base import Context, register_experiment, rerun_command
from advlab.models.backbones import BACKBONES, backbone_table, build_backbone
from advlab.models.weights import weights_source
from advlab.report import Report, percent
from advlab.report.figures import bar_plot, learning_curves
from advlab.runs import Run
from advlab.train.recipes import SELF_PRETRAINED, self_pretrained_backbone
from advlab.train.store import weights_sha256
from advlab.train.transfer import (
    Backbone,
    Normalize,
    TransferSettings,
    cached_features,
    fine_tune_configuration,
    run_chunked,
)
from advlab.validation import check_choices

log = logging.getLogger(__name__)

# fmt: off
REPORT_TABLE_8 = {  # validation accuracy: classifier -> backbone -> accuracy
    "naive_bayes": {"vgg16": 0.450, "inception_v3": 0.655, "mobilenet": 0.705, "xception": 0.364},
    "knn": {"vgg16": 0.664, "inception_v3": 0.711, "mobilenet": 0.852, "xception": 0.685},
    "svm": {"vgg16": 0.838, "inception_v3": 0.805, "mobilenet": 0.929, "xception": 0.770},
    "logistic_regression": {"vgg16": 0.891, "inception_v3": 0.864, "mobilenet": 0.944,
                            "xception": 0.820},
    "random_forest": {"vgg16": 0.864, "inception_v3": 0.820, "mobilenet": 0.926,
                      "xception": 0.794},
}
"""The report's table 8: validation accuracy of each classifier on each backbone's features."""

REPORT_TABLE_9 = {  # (optimizer, batch norm, dropout) -> backbone -> (phase A, phase B)
    ("adam", False, 0.0): {"vgg16": (0.891, 0.920), "mobilenet": (0.938, 0.941)},
    ("sgd", False, 0.0): {"vgg16": (0.779, 0.867), "mobilenet": (0.891, 0.902)},
    ("adam", True, 0.0): {"vgg16": (0.888, 0.932), "mobilenet": (0.949, 0.947)},
    ("sgd", True, 0.0): {"vgg16": (0.808, 0.844), "mobilenet": (0.882, 0.882)},
    ("adam", False, 0.5): {"vgg16": (0.888, 0.923), "mobilenet": (0.935, 0.947)},
    ("sgd", False, 0.5): {"vgg16": (0.785, 0.876), "mobilenet": (0.917, 0.911)},
    ("adam", True, 0.5): {"vgg16": (0.885, 0.941), "mobilenet": (0.947, 0.967)},
    ("sgd", True, 0.5): {"vgg16": (0.805, 0.855), "mobilenet": (0.905, 0.908)},
}
"""The report's table 9: validation accuracy after phase A and phase B of fine-tuning."""
# fmt: on

REPORT_BEST_FINE_TUNE = 0.967  # MobileNet, Adam + batch norm + dropout 0.5


@dataclass(frozen=True)
class FlowersTransferConfig(TransferSettings):
    """CPU defaults: the report's grid and phase A on advlab's self-pretrained ResNet-18 at
    64 x 64, phase B cut from 50 epochs to 10 (`advlab.train.transfer.TransferSettings`); the
    ImageNet backbones run at the report's 128 x 128 when their weights exist."""

    imagenet_size: int = 128
    imagenet_backbones: tuple[str, ...] = tuple(BACKBONES)
    classifiers: tuple[str, ...] = CLASSIFIERS
    optimizers: tuple[str, ...] = ("adam", "sgd")
    batch_norm: tuple[bool, ...] = (False, True)
    dropout: tuple[float, ...] = (0.0, 0.5)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choices("imagenet_backbones", self.imagenet_backbones, list(BACKBONES), empty=True)
        check_choices("optimizers", self.optimizers, ("adam", "sgd"))
        check_choices("classifiers", self.classifiers, CLASSIFIERS)


def _imagenet(name: str) -> Backbone:
    """An ImageNet backbone whose frozen part is all of it; raises when its weights are not
    on this machine."""
    spec = BACKBONES[name]
    net = build_backbone(name, weights="imagenet")
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    frozen = nn.Sequential(Normalize(mean, std), net)
    for p in frozen.parameters():
        p.requires_grad_(False)
    return Backbone(
        name, frozen, nn.Flatten(), weights_source(net), weights_sha256(net.state_dict())
    )


def _classify(
    cfg: FlowersTransferConfig, feats: dict[str, np.ndarray], labels: dict[str, np.ndarray]
) -> dict[str, dict[str, float]]:
    out = {}
    for name, clf in tabular_classifiers(cfg.classifiers, seed=cfg.seed).items():
        clf.fit(feats["train"], labels["train"])
        out[name] = {
            k: float((clf.predict(feats[k]) == labels[k]).mean()) for k in ("val", "held_out")
        }
    return out


def execute(cfg: FlowersTransferConfig, ctx: Context) -> dict[str, Any]:
    device = torch.device(ctx.device)
    out: dict[str, Any] = {"backbones": {}, "unmeasured": {}}
    imagenet: dict[str, Backbone] = {}
    for name in cfg.imagenet_backbones:
        try:
            imagenet[name] = _imagenet(name)
        except (WeightsNotFoundError, ConfigError) as exc:
            log.warning("%s: no ImageNet weights on this machine, not measured", name)
            out["unmeasured"][name] = str(exc).splitlines()[0]
    with ctx.timed("pretrained backbone"):
        own = self_pretrained_backbone(cfg, ctx.device)
    jobs = [(own, cfg.image_size)] + [(b, cfg.imagenet_size) for b in imagenet.values()]
    for backbone, size in jobs:
        backbone.frozen.to(device)
        backbone.top.to(device)
        train = load_dataset("flowers17", "train", image_size=size)
        val = load_dataset("flowers17", "val", image_size=size)
        select, held = held_out_split(val.labels, cfg.held_out, seed=cfg.seed)
        x, y = train.tensors(device)
        xv, yv = val.tensors(device)
        key = f"{backbone.name}-{backbone.digest[:16]}-{size}"
        with ctx.timed(f"features {backbone.name}"):
            frozen = {"train": cached_features(backbone.frozen, x, key),
                      "val": cached_features(backbone.frozen, xv, key)}  # fmt: skip
            flat = {k: run_chunked(backbone.top, v).flatten(1) for k, v in frozen.items()}
        feats = {"train": flat["train"].cpu().numpy(), "val": flat["val"].cpu().numpy(),
                 "held_out": flat["val"][torch.as_tensor(held)].cpu().numpy()}  # fmt: skip
        labels = {"train": train.labels, "val": val.labels, "held_out": val.labels[held]}
        with ctx.timed(f"classifiers {backbone.name}"):
            result: dict[str, Any] = {"weights": backbone.weights, "image_size": size,
                                      "features": int(feats["train"].shape[1]),
                                      "classifiers": _classify(cfg, feats, labels)}  # fmt: skip
        # Fine-tuning: phase B unfreezes the top only where the backbone has one to train.
        phase_b = cfg.phase_b_epochs if backbone.name == SELF_PRETRAINED else 0
        sel_t, held_t = torch.as_tensor(select, device=device), torch.as_tensor(held, device=device)
        tr = (frozen["train"], y)
        va = (frozen["val"][sel_t], yv[sel_t])
        ho = (frozen["val"][held_t], yv[held_t])
        runs = []
        grid = itertools.product(cfg.optimizers, cfg.batch_norm, cfg.dropout)
        for opt, bn, drop in grid:
            with ctx.timed(f"fine-tune {backbone.name}"):
                row, _ = fine_tune_configuration(
                    cfg,
                    backbone,
                    tr,
                    va,
                    ho,
                    num_classes=train.num_classes,
                    optimizer=opt,
                    batch_norm=bn,
                    dropout=drop,
                    phase_b_epochs=phase_b,
                )
            runs.append(row)
        result["fine_tune"] = runs
        result["n_selection"], result["n_held_out"] = len(select), len(held)
        out["backbones"][backbone.name] = result
        backbone.frozen.cpu()
        backbone.top.cpu()
    out["order"] = [b.name for b, _ in jobs]
    return out


def _name(r: dict[str, Any]) -> str:
    parts = [{"adam": "Adam", "sgd": "SGD"}[r["optimizer"]]]
    if r["batch_norm"]:
        parts.append("BN")
    if r["dropout"]:
        parts.append(f"dropout {r['dropout']:g}")
    return " + ".join(parts)


def report(cfg: FlowersTransferConfig, metrics: dict[str, Any], run: Run) -> Report:
    rep = Report("Flowers-17: transfer learning (seed 004, Part C)", run.path)
    own = metrics["backbones"][SELF_PRETRAINED]
    unmeasured = metrics["unmeasured"]
    warning = ""
    if unmeasured:
        warning = (
            f"**No ImageNet weights on this machine for {', '.join(unmeasured)}: those "
            "backbones are supported but not measured here** (`advlab weights info`; "
            "`advlab weights import FILE` installs torchvision's VGG16 and Inception-v3 "
            "files, checksum verified). "
        )
    rep.intro(
        warning + f"The measured backbone is **{own['weights']}**, cut after layer3 "
        f"(phase B unfreezes layer4), at {own['image_size']} x {own['image_size']}: its "
        "numbers show the transfer pipeline working and are not ImageNet transfer results, so "
        "they are not comparable to the report's (best: MobileNet + logistic regression 0.944, "
        f"MobileNet fine-tuned with Adam + BN + dropout {REPORT_BEST_FINE_TUNE}). Features of "
        "the frozen part are computed once per backbone and cached on disk. Classifiers fit on "
        "the 1,020 training images; fine-tuning keeps, in each phase, the epoch of minimum loss "
        f"on {own['n_selection']} validation images and is measured on the other "
        f"{own['n_held_out']}, never used to choose (the classifiers are measured on those too, "
        "and on all 340). Phase A: "
        f"{cfg.phase_a_epochs} epochs at {cfg.phase_a_lr:g}; phase B: {cfg.phase_b_epochs} "
        f"epochs at {cfg.phase_b_lr:g}; batch {cfg.batch_size}; a top of {cfg.hidden} units. "
        f"Rerun with `{rerun_command('flowers-transfer', cfg)}`."
    )
    rows = [
        {
            "backbone": r["backbone"],
            "source": r["source"],
            "parameters": f"{r['parameters']:,}",
            "Keras trainable": f"{r['Keras trainable']:,}",
            "report parameters": f"{r['report parameters']:,}",
            "feature map (128 px)": "x".join(map(str, r["feature map"])),
            "report feature map": "x".join(map(str, r["report feature map"])),
            "tabular features": f"{r['tabular features']:,}",
            "ImageNet weights": "not here" if r["backbone"] in unmeasured else "loaded",
        }
        for r in backbone_table()
    ]
    rep.table(
        "Backbones",
        rows,
        caption="The report's table 7 next to advlab's backbones "
        "(parameters without the top, feature map at 128 x 128).",
    )
    for name, why in unmeasured.items():
        rep.text("Backbones", f"- {name}: unmeasured ({why})")
    order = metrics["order"]
    crows = []
    for clf in cfg.classifiers:
        row: dict[str, Any] = {"classifier": clf}
        for b in order:
            acc = metrics["backbones"][b]["classifiers"][clf]
            row[f"{b} val acc."] = f"{acc['val']:.3f}"
            row[f"{b} held-out acc."] = f"{acc['held_out']:.3f}"
        for b, value in REPORT_TABLE_8.get(clf, {}).items():
            row[f"report {b}"] = f"{value:.3f}"
        crows.append(row)
    rep.table(
        "Feature extraction",
        crows,
        caption="Validation accuracy of scikit-learn "
        "classifiers on the backbones' features (the report's table 8: ImageNet "
        "backbones at 128 x 128).",
    )
    series = {
        b: [metrics["backbones"][b]["classifiers"][c]["val"] for c in cfg.classifiers]
        for b in order
    }
    fig = bar_plot(
        run.figure("classifiers.png"),
        list(cfg.classifiers),
        series,
        title="Classifiers on extracted features",
        xlabel="classifier",
        ylabel="validation accuracy",
        ylim=(0, 1),
    )
    rep.figure("Feature extraction", fig, "All 340 validation images.")
    for b in order:
        res = metrics["backbones"][b]
        frows = []
        for r in res["fine_tune"]:
            ref = REPORT_TABLE_9.get((r["optimizer"], r["batch_norm"], r["dropout"]), {})
            frows.append(
                {
                    "configuration": _name(r),
                    "phase A val acc.": f"{r['phase_a_val_acc']:.3f}",
                    "final val acc.": f"{r['val_acc']:.3f}",
                    "held-out acc.": f"{r['held_out_acc']:.3f}",
                    **{f"report {k} A / B": f"{a:.3f} / {b_:.3f}" for k, (a, b_) in ref.items()},
                }
            )
        rep.table(
            "Fine-tuning",
            frows,
            caption=f"{b}: phase A (frozen backbone) then phase B "
            "(top block unfrozen) where there is one; validation accuracy on the "
            "selection half at the epoch kept, held-out accuracy on the other half.",
        )
        best = max(res["fine_tune"], key=lambda r: r["held_out_acc"])
        best_clf = max(res["classifiers"].items(), key=lambda kv: kv[1]["held_out"])
        rep.text(
            "Fine-tuning",
            (
                f"{b}: best fine-tuning {_name(best)}, {percent(best['held_out_acc'])} on the "
                f"held-out images; best classifier on the same images {best_clf[0]}, "
                f"{percent(best_clf[1]['held_out'])}."
            ),
        )
        history = {
            k: best["phase_a"][k] + (best["phase_b"] or {}).get(k, [])
            for k in ("train_loss", "train_acc", "val_loss", "val_acc")
        }
        fig = learning_curves(
            run.figure(f"fine_tune_{b}.png"),
            history,
            title=f"{b}, {_name(best)}: phase A then phase B",
            val_label="selection",
        )
        rep.figure("Fine-tuning", fig, f"Phase B starts after epoch {cfg.phase_a_epochs}.")
    return rep


register_experiment(
    "flowers-transfer",
    "seed 004 Part C: backbone table, feature extraction + scikit-learn classifiers, two-phase "
    "fine-tuning (self-pretrained ResNet-18 when no ImageNet weights are present)",
    config=FlowersTransferConfig,
    execute=execute,
    report=report,
)
