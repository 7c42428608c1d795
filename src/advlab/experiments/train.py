"""`train`: train a registered model on a dataset, store it, and report its learning curves.

`advlab train MODEL --data DATASET` runs this experiment. A model already in the store with the
same recipe is not trained again; its stored metrics are reported.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from advlab.data import get_spec
from advlab.experiments.base import Context, register_experiment
from advlab.report import Report
from advlab.report.figures import learning_curves
from advlab.runs import Run
from advlab.train import TrainConfig
from advlab.train.checkpoint import load_checkpoint
from advlab.train.store import ModelRecipe, check_recipe, train_and_store


@dataclass(frozen=True)
class TrainRunConfig:
    """What to train. The run's seed is the training seed."""

    model: str = "mnist_cnn"
    dataset: str = "mnist"
    model_config: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    normalize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_recipe(recipe_of(self))  # the model's settings, before a run folder exists


def recipe_of(cfg: TrainRunConfig) -> ModelRecipe:
    train = dataclasses.replace(cfg.train, seed=cfg.seed)
    return ModelRecipe(cfg.model, cfg.dataset, dict(cfg.model_config), train, cfg.normalize)


def execute(cfg: TrainRunConfig, ctx: Context) -> dict[str, Any]:
    recipe = recipe_of(cfg)
    path = recipe.folder() / "model.pt"
    stored = path.is_file()
    if not stored:
        with ctx.timed("train"):
            train_and_store(recipe, device=ctx.device)
    state = load_checkpoint(path)
    return {
        "checkpoint": str(path),
        "reused_from_store": stored,
        "metrics": state["metrics"],
        "created": state["created"],
        "initial_weights": state.get("initial_weights", "unrecorded"),
    }


def report(cfg: TrainRunConfig, metrics: dict[str, Any], run: Run) -> Report:
    m = metrics["metrics"]
    hist = m["history"]
    split = next(k.split("_")[0] for k in m if k.endswith("_accuracy"))
    acc, loss = m[f"{split}_accuracy"], m[f"{split}_loss"]
    spec = get_spec(cfg.dataset)
    t = dataclasses.replace(cfg.train, seed=cfg.seed)
    rep = Report(f"Training {cfg.model} on {cfg.dataset}", run.path)
    rep.intro(
        f"Stored model: `{metrics['checkpoint']}`"
        + (" (already in the store: not trained again)." if metrics["reused_from_store"] else ".")
    )
    schedule = (
        t.schedule
        if t.schedule == "none"
        else f"{t.schedule} (step {t.step_size}, gamma {t.gamma})"
    )
    norm = (
        "the training set's per-channel mean/std normalise inside the model wrapper"
        if cfg.normalize
        else "no normalisation"
    )
    rep.text(
        "Methodology",
        f"""
**Data.** `{cfg.dataset}` ({spec.description}): trained on the train split, evaluated after
every epoch on the {split} split, which also drives early stopping when it is on.
Pixels in [0, 1]; {norm}.

**Model.** `{cfg.model}` from the registry, config {dict(cfg.model_config) or "defaults"};
initial weights: {metrics["initial_weights"]}.

**Training.** {t.optimizer} (lr {t.lr}, momentum {t.momentum}, nesterov {t.nesterov}, weight
decay {t.weight_decay}), schedule {schedule}, batch size {t.batch_size}, {t.epochs} epochs,
label smoothing {t.label_smoothing}, augmentation {t.augment}, early stopping
{t.early_stopping or "off"}, seed {t.seed}.
""",
    )
    rep.text(
        "Results",
        f"{split.capitalize()} accuracy **{acc:.4f}** (loss {loss:.4f}), trained in "
        f"{m['train_seconds']:.1f} s on {run.load_json('env.json').get('device', 'cpu')}.",
    )
    rows = [
        {
            "epoch": i + 1,
            "lr": hist["lr"][i] if hist.get("lr") else "",
            "train loss": hist["train_loss"][i],
            "train acc": hist["train_acc"][i],
            f"{split} loss": hist["val_loss"][i] if hist["val_loss"] else "",
            f"{split} acc": hist["val_acc"][i] if hist["val_acc"] else "",
        }
        for i in range(len(hist["train_loss"]))
    ]
    fig = learning_curves(
        run.figure("learning_curves.png"),
        hist,
        title=f"{cfg.model} on {cfg.dataset}: learning curves",
        val_label=split,
    )
    rep.figure("Results", fig, "Loss and accuracy per epoch.")
    rep.table("Results", rows, caption="Per-epoch metrics")
    rep.text("Analysis", _analysis(hist, split))
    return rep


def _analysis(hist: dict[str, Any], split: str) -> str:
    if not hist["val_loss"]:
        return "- No validation metrics were recorded."
    val = hist["val_loss"]
    best = min(range(len(val)), key=val.__getitem__)
    gap = hist["train_acc"][-1] - hist["val_acc"][-1]
    lines = [
        f"- **Which epoch is best?** The {split} loss is lowest after epoch {best + 1} "
        f"({val[best]:.4f}, accuracy {hist['val_acc'][best]:.4f}).",
        f"- **Does it overfit?** At the end the training accuracy is {hist['train_acc'][-1]:.4f} "
        f"and the {split} accuracy {hist['val_acc'][-1]:.4f} (gap {gap:+.4f})"
        + (
            f"; the {split} loss rose after epoch {best + 1}, a sign of overfitting."
            if best < len(val) - 1 and val[-1] > val[best] * 1.05
            else "; the validation loss did not rise noticeably."
        ),
    ]
    return "\n".join(lines)


register_experiment(
    "train",
    "train a registered model on a dataset, store it, report learning curves",
    config=TrainRunConfig,
    execute=execute,
    report=report,
)
