"""`generator-mnist`, `generator-cifar`: seed 001, Exercise 2 (A)-(C) - adversarial examples made
by simple generators.

(A) an MLP (as in Exercise 1, 32-unit ReLU layers) and a CNN, trained and kept in the model
store; (B) five chosen MNIST test digits, and for each a simple generator per class 0-9, trained
in two steps repeated until the model says that class (advlab's `SimpleGenerator`, all the
generators of a grid as one batch); (C) the same with one CIFAR-10 test image and every class.
Each model gets a grid of the adversarial images with the originals, and a table of
perturbation norms and rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from advlab.attacks import SimpleGenerator, TargetedMisclassification, l2, linf
from advlab.data import get_spec, load_dataset
from advlab.errors import ConfigError
from advlab.experiments.base import Context, register_experiment, rerun_command
from advlab.fileio import atomic_path
from advlab.report import Report
from advlab.report.figures import image_grid
from advlab.runs import Run
from advlab.train import TrainConfig
from advlab.train.store import ModelRecipe, check_recipe, get_trained
from advlab.validation import check_each, check_int

_MODEL_CONFIG: dict[str, dict[str, Any]] = {"mlp": {"depth": 5, "width": 32}}


@dataclass(frozen=True)
class GeneratorConfig:
    """Seed 001 Ex. 2 (B) on MNIST: five chosen digits (the first test image of each of
    `digits`) x 10 classes, against an MLP and a CNN."""

    dataset: str = "mnist"
    models: tuple[str, ...] = ("mlp", "mnist_cnn")
    epochs: int = 3
    digits: tuple[int, ...] = (0, 2, 4, 7, 9)
    warmup_steps: int = 200
    fit_steps: int = 20
    push_steps: int = 5
    max_rounds: int = 50
    lr: float = 0.05
    seed: int = 0

    def attack(self) -> SimpleGenerator:
        return SimpleGenerator(
            warmup_steps=self.warmup_steps,
            fit_steps=self.fit_steps,
            push_steps=self.push_steps,
            max_rounds=self.max_rounds,
            lr=self.lr,
            seed=self.seed,
        )

    def recipe(self, model: str) -> ModelRecipe:
        """The store recipe of the attacked model `model`."""
        train = TrainConfig(
            epochs=self.epochs, lr=1e-3, optimizer="adam", batch_size=128, seed=self.seed
        )
        return ModelRecipe(
            model, self.dataset, model_config=_MODEL_CONFIG.get(model, {}), train=train
        )

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        classes = len(get_spec(self.dataset).classes)
        check_each("digits", self.digits, check_int, minimum=0, maximum=classes - 1)
        self.attack()  # its own checks
        for model in self.models:  # training settings and models, before any work
            check_recipe(self.recipe(model))


@dataclass(frozen=True)
class GeneratorCifarConfig(GeneratorConfig):
    """Seed 001 Ex. 2 (C): one CIFAR-10 test image (the first of class `digits[0]`) x 10."""

    dataset: str = "cifar10"
    models: tuple[str, ...] = ("mlp", "small_cnn")
    epochs: int = 10
    digits: tuple[int, ...] = (3,)  # cat


def execute(cfg: GeneratorConfig, ctx: Context) -> dict[str, Any]:
    test = load_dataset(cfg.dataset, "test")
    k = test.num_classes
    device = torch.device(ctx.device)
    x_all, y_all = test.tensors(device)
    out: dict[str, Any] = {"classes": list(test.classes), "models": {}}
    for name in cfg.models:
        recipe = cfg.recipe(name)
        with ctx.timed(f"model {name}"):
            model = get_trained(recipe, device=ctx.device).eval()
        pred = model.predict(x_all)
        # The first correctly classified test image of each chosen class.
        picks = []
        for d in cfg.digits:
            hits = torch.nonzero((y_all == d) & (pred == d)).flatten()
            if len(hits) == 0:
                raise ConfigError(f"digits: {name} classifies no test image of class {d}")
            picks.append(int(hits[0]))
        x = x_all[picks].repeat_interleave(k, dim=0)  # (len(digits) * k, C, H, W)
        target = torch.arange(k, device=device).repeat(len(picks))
        attack = cfg.attack()
        with ctx.timed(f"attack {name}"):
            found = attack.search(model, x, TargetedMisclassification(target))
        adv, ok = found.adversarials, found.success
        with torch.no_grad():
            conf = torch.softmax(model(adv), 1).gather(1, target[:, None]).squeeze(1)
        own = target == y_all[picks].repeat_interleave(k)  # generator towards the true class
        norms, inf = l2(x, adv), linf(x, adv)
        rounds = found.rounds
        with atomic_path(ctx.run.file(f"grid_{name}.npz")) as tmp:
            np.savez_compressed(
                tmp,
                originals=x_all[picks].cpu().numpy(),
                images=adv.cpu().numpy().reshape(len(picks), k, *x.shape[1:]),
                success=ok.cpu().numpy().reshape(len(picks), k),
                confidence=conf.cpu().numpy().reshape(len(picks), k),
            )
        other = ~own
        out["models"][name] = {
            "recipe_key": recipe.key(),
            "test_accuracy": float((pred == y_all).float().mean()),
            "indices": picks,
            "success_rate": float(ok[other].float().mean()),
            "n_generators": int(other.sum()),
            "median_l2": float(norms[other & ok].median()) if bool((other & ok).any()) else None,
            "max_l2": float(norms[other & ok].max()) if bool((other & ok).any()) else None,
            "median_linf": float(inf[other & ok].median()) if bool((other & ok).any()) else None,
            "mean_rounds": float(rounds[other].float().mean()),
            "max_rounds_needed": (
                int(rounds[other & ok].max()) if bool((other & ok).any()) else None
            ),
            "own_class_l2": float(norms[own].median()),
            "per_target_l2": [
                float(norms[other & ok & (target == t)].median())
                if bool((other & ok & (target == t)).any())
                else None
                for t in range(k)
            ],
        }
    return out


def report(cfg: GeneratorConfig, metrics: dict[str, Any], run: Run) -> Report:
    classes = metrics["classes"]
    part = "(C)" if cfg.dataset == "cifar10" else "(B)"
    rep = Report(
        f"Simple-generator adversarial examples on {cfg.dataset} (seed 001, Ex. 2 {part})", run.path
    )
    name = "generator-cifar" if cfg.dataset == "cifar10" else "generator-mnist"
    rep.intro(f"Seed {cfg.seed}. Rerun with `{rerun_command(name, cfg)}`.")
    acc = ", ".join(f"`{m}` {r['test_accuracy']:.4f}" for m, r in metrics["models"].items())
    rep.text(
        "Methodology",
        f"""
**Models (A).** {", ".join(f"`{m}`" for m in cfg.models)} from the model store, trained on the
{cfg.dataset} training set ({cfg.epochs} epochs, Adam, lr 0.001, batch 128); the MLP has 5
hidden layers of 32 ReLU units, as in Exercise 1. Test accuracy: {acc}. The attacks never
change their weights (the exercise's "disable training for all parameters in C").

**Generators (B, C).** For each chosen test image i and each class j, a simple generator
f_ij(1) = sigmoid(w + b), a dense layer from one constant input to every pixel (initialised
like Keras: glorot-uniform kernel, zero bias) and fitted to image i for {cfg.warmup_steps}
Adam steps first. One round: {cfg.fit_steps} Adam steps (lr
{cfg.lr}) on the mean squared error to image i, then {cfg.push_steps} Adam steps on the
cross-entropy of C(f_ij) towards the one-hot of j, each generator stopping at the first step
after which C says j. Rounds repeat until then (at most {cfg.max_rounds}). All
{len(cfg.digits) * len(classes)} generators of a grid are one batch.
Chosen images: the first correctly classified test image of class(es)
{", ".join(classes[d] for d in cfg.digits)}. Norms are on [0, 1] pixels.
""",
    )
    rows = []
    for m, r in metrics["models"].items():
        rows.append(
            {
                "model": m,
                "generators (j != label)": r["n_generators"],
                "fooled": r["success_rate"],
                "median L2": r["median_l2"],
                "max L2": r["max_l2"],
                "median Linf": r["median_linf"],
                "mean rounds": r["mean_rounds"],
                "most rounds": r["max_rounds_needed"],
                "L2 of j = label": r["own_class_l2"],
            }
        )
        grid_file = run.file(f"grid_{m}.npz")
        if grid_file.is_file():
            with np.load(grid_file) as g:
                originals = g["originals"].transpose(0, 2, 3, 1)[:, None]
                images = g["images"].transpose(0, 1, 3, 4, 2)
                ok, conf = g["success"], g["confidence"]
            cells = np.concatenate([originals, images], axis=1)
            titles = [
                ["original"]
                + [
                    f"{classes[j][:6]} {conf[i, j]:.2f}" + ("" if ok[i, j] else " x")
                    for j in range(len(classes))
                ]
                for i in range(len(images))
            ]
            fig = image_grid(
                run.figure(f"grid_{m}.png"),
                cells,
                title=f"{m}: generator images per target class (title: target and "
                "its probability; x = not reached)",
                cell_titles=titles,
                row_labels=[classes[d] for d in cfg.digits],
            )
            rep.figure(
                "Results", fig, f"{m}: the original, then the image of each class's generator."
            )
    rep.table("Results", rows, caption="Generators towards the other classes")
    rep.text("Analysis", _analysis(metrics))
    return rep


def _analysis(metrics: dict[str, Any]) -> str:
    lines = []
    for m, r in metrics["models"].items():
        if r["median_l2"] is None:
            lines.append(f"- **{m}.** No generator reached its class.")
            continue
        per = [(v, j) for j, v in enumerate(r["per_target_l2"]) if v is not None]
        hardest = max(per)[1] if per else None
        lines.append(
            f"- **{m}.** {100 * r['success_rate']:.0f}% of the generators reach their class, "
            f"after {r['mean_rounds']:.1f} rounds on average, with a median L2 change of "
            f"{r['median_l2']:.2f} (median largest pixel change {r['median_linf']:.2f}). The "
            f"generator towards the true class ends at L2 {r['own_class_l2']:.2f}: its warm-up "
            "fit and a single push step (Adam's first step moves every pixel by about the "
            "learning rate, in logit space), a floor under the other norms."
            + (
                f" The class needing the largest change is {metrics['classes'][hardest]}."
                if hardest is not None
                else ""
            )
        )
    if len(metrics["models"]) == 2:
        (a, ra), (b, rb) = metrics["models"].items()
        if ra["median_l2"] is not None and rb["median_l2"] is not None:
            lines.append(
                f"- **MLP vs CNN.** Median L2 {ra['median_l2']:.2f} for `{a}` against "
                f"{rb['median_l2']:.2f} for `{b}`: neither is robust; the exercise's generator "
                "is a gradient attack with an MSE anchor to the image, so it finds a nearby "
                "adversarial for any differentiable classifier."
            )
    return "\n".join(lines)


for _name, _cfg, _summary in (
    (
        "generator-mnist",
        GeneratorConfig,
        "seed 001 Ex. 2 (B): simple-generator adversarials, 5 MNIST digits x 10 classes, MLP + CNN",
    ),
    (
        "generator-cifar",
        GeneratorCifarConfig,
        "seed 001 Ex. 2 (C): simple-generator adversarials, one CIFAR-10 image x 10 classes",
    ),
):
    register_experiment(_name, _summary, config=_cfg, execute=execute, report=report)
