"""`fgsm-mnist`: seed 002 - FGSM and its iterated version on a trained MNIST model, in PyTorch
and in JAX on the same weights.

Part 1: a test '7' perturbed with eps 0.3 (original, perturbation, adversarial, both prediction
vectors). Part 2: accuracy on 1,000 test images as a function of eps. Part 3: the iterated
attack, k = 5 steps of eps/k, on the same image, and the smallest eps at which each attack
fools it. Part 4: the part-2 curve for k = 5. Seed 002 is written in JAX: every curve is also
computed by `advlab.attacks.jax_attacks` on a JAX copy of the model, and the two backends'
accuracies are compared.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from advlab.analysis.robustness import attack_summary
from advlab.attacks import BIM, FGSM
from advlab.data import load_dataset
from advlab.errors import ConfigError
from advlab.experiments.base import Context, register_experiment, rerun_command
from advlab.fileio import atomic_path
from advlab.report import Report
from advlab.report.figures import adversarial_example, line_plot
from advlab.runs import Run
from advlab.train.recipes import StoreTrained
from advlab.train.store import check_recipe, get_trained
from advlab.validation import check_each, check_int, check_number

EPSILONS = tuple(round(0.05 * i, 2) for i in range(11))  # 0 to 0.5
SEARCH = tuple(round(0.01 * i, 2) for i in range(1, 51))  # 0.01 to 0.5


@dataclass(frozen=True)
class FGSMMnistConfig(StoreTrained):
    """Seed 002's setting: eps 0.3 on a test '7', 1,000 test images, eps 0 to 0.5, k = 5.

    The model is `mnist_cnn` (the Keras MNIST convnet) from the model store, trained with Adam
    for `epochs` epochs when the store does not hold it yet.
    """

    dataset: str = "mnist"
    model: str = "mnist_cnn"
    epochs: int = 3
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 128
    epsilon: float = 0.3
    epsilons: tuple[float, ...] = EPSILONS
    steps: int = 5
    n_images: int = 1000
    digit: int = 7
    search_epsilons: tuple[float, ...] = SEARCH
    jax: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_int("steps", self.steps, minimum=1)
        check_int("n_images", self.n_images, minimum=1)
        # Pixels are in [0, 1]: an epsilon above 1 is a typo (8 for 8/255), not an attack.
        check_number("epsilon", self.epsilon, minimum=0, maximum=1)
        check_each("epsilons", self.epsilons, check_number, minimum=0, maximum=1)
        check_each("search_epsilons", self.search_epsilons, check_number, minimum=0, maximum=1)
        check_recipe(self.recipe())  # training settings and model, before any work
        BIM(steps=self.steps)


_JAX_NOTE = """**JAX.** Seed 002 is written in JAX: `advlab.models.jax_model.to_jax` rebuilds the
same network with `jax.lax` operations and the same weights, and
`advlab.attacks.jax_attacks.JaxFGSM` computes the attack with `jax.grad`. Both curves are
computed by both backends."""
_NO_JAX_NOTE = """**JAX.** Not run (`jax=false`): the curves are PyTorch's only; the default also
computes them in JAX, as seed 002 is written."""


def _probs(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(x), dim=1).cpu().numpy()


def execute(cfg: FGSMMnistConfig, ctx: Context) -> dict[str, Any]:
    device = torch.device(ctx.device)
    recipe = cfg.recipe()
    with ctx.timed("model"):
        model = get_trained(recipe, device=ctx.device).eval()
    test = load_dataset(cfg.dataset, "test")
    x_all, y_all = test.tensors(device)
    pred_all = model.predict(x_all)
    clean_accuracy = float((pred_all == y_all).float().mean())

    # Parts 1 and 3: the first correctly classified test image of class `digit`.
    hits = torch.nonzero((y_all == cfg.digit) & (pred_all == y_all)).flatten()
    if len(hits) == 0:
        raise ConfigError(f"digit: no correctly classified test image of class {cfg.digit}")
    index = int(hits[0])
    x0, y0 = x_all[index : index + 1], y_all[index : index + 1]
    fgsm, bim = FGSM(), BIM(steps=cfg.steps)
    with ctx.timed("single image"):
        _, x_fgsm, ok_fgsm = fgsm(model, x0, y0, epsilons=cfg.epsilon)
        _, x_bim, ok_bim = bim(model, x0, y0, epsilons=cfg.epsilon)
        search = list(cfg.search_epsilons)
        _, _, fooled_f = fgsm(model, x0, y0, epsilons=search)
        _, _, fooled_b = bim(model, x0, y0, epsilons=search)
    smallest = {
        name: next((e for e, ok in zip(search, flags, strict=True) if bool(ok)), None)
        for name, flags in (("fgsm", fooled_f), ("bim", fooled_b))
    }
    with atomic_path(ctx.run.file("example.npz")) as tmp:
        np.savez_compressed(
            tmp,
            original=x0[0].cpu().numpy(),
            fgsm=x_fgsm[0].cpu().numpy(),
            bim=x_bim[0].cpu().numpy(),
            p_original=_probs(model, x0)[0],
            p_fgsm=_probs(model, x_fgsm)[0],
            p_bim=_probs(model, x_bim)[0],
        )

    # Parts 2 and 4: accuracy on a fixed seeded set of test images, per epsilon.
    subset = test.take(cfg.n_images, seed=cfg.seed) if cfg.n_images < len(test) else test
    x, y = subset.tensors(device)
    correct = model.predict(x) == y
    eps = list(cfg.epsilons)
    curves: dict[str, list[dict[str, Any]]] = {}
    for name, attack in (("fgsm", fgsm), ("bim", bim)):
        with ctx.timed(f"torch {name}"):
            _, _, success = attack(model, x, y, epsilons=eps)
        curves[name] = [
            {"epsilon": e, **attack_summary(correct, s)} for e, s in zip(eps, success, strict=True)
        ]

    jax_rows: dict[str, list[float]] = {}
    if cfg.jax:
        from advlab.attacks.jax_attacks import JaxFGSM
        from advlab.models.jax_model import to_jax

        jax_attack = JaxFGSM(*to_jax(model.cpu()))
        model.to(device)
        xn, yn = x.cpu().numpy(), y.cpu().numpy()
        for name, steps in (("fgsm", 1), ("bim", cfg.steps)):
            with ctx.timed(f"jax {name}"):
                jax_rows[name] = [
                    float((jax_attack.predict(jax_attack(xn, yn, e, steps=steps)) == yn).mean())
                    for e in eps
                ]
    gaps = {
        name: max(
            abs(r["robust_accuracy"] - j) for r, j in zip(curves[name], jax_rows[name], strict=True)
        )
        for name in jax_rows
    }
    return {
        "model": {
            "name": cfg.model,
            "recipe_key": recipe.key(),
            "test_accuracy": clean_accuracy,
            "test_images": len(test),
        },
        "example": {
            "index": index,
            "label": cfg.digit,
            "epsilon": cfg.epsilon,
            "fgsm_fooled": bool(ok_fgsm[0]),
            "bim_fooled": bool(ok_bim[0]),
            "fgsm_prediction": int(model.predict(x_fgsm)[0]),
            "bim_prediction": int(model.predict(x_bim)[0]),
            "smallest_epsilon": smallest,
        },
        "n_images": len(subset),
        "curves": curves,
        "jax": jax_rows,
        "jax_max_gap": gaps,
    }


def report(cfg: FGSMMnistConfig, metrics: dict[str, Any], run: Run) -> Report:
    m, ex, curves = metrics["model"], metrics["example"], metrics["curves"]
    k = cfg.steps
    rep = Report(f"FGSM and iterated FGSM on {cfg.model} / MNIST (seed 002)", run.path)
    rep.intro(
        f"Model `{cfg.model}` from the model store (recipe `{m['recipe_key']}`), "
        f"{m['test_accuracy']:.4f} accuracy on the {m['test_images']:,} test images; seed "
        f"{cfg.seed}. Rerun with `{rerun_command('fgsm-mnist', cfg)}`."
    )
    rep.text(
        "Methodology",
        f"""
**Model.** `{cfg.model}`: the Keras "simple MNIST convnet" (conv 32 - pool - conv 64 - pool -
dropout - dense 10), trained on the {cfg.dataset} training set with {cfg.optimizer}, lr
{cfg.lr}, batch {cfg.batch_size}, {cfg.epochs} epochs, stored in advlab's model store. Pixels
are in [0, 1]; the normalisation is inside the model, so the attacks work on pixels.

**Attacks.** FGSM: x* = clip(x + eps * sign(dL/dx), 0, 1) with L the cross-entropy of the
true label. Iterated (seed 002, part 3; advlab's `BIM`): k = {k} times x <- clip(x +
(eps/k) * sign(dL/dx), 0, 1), so the total change stays within eps. Accuracy curves use
{metrics["n_images"]} test images drawn once with seed {cfg.seed} (class-stratified) and eps in
{list(cfg.epsilons)}. Robust accuracy counts images still classified correctly, over all of
them; the success rate counts fooled images among those the model got right, with 95% Wilson
intervals.

{_JAX_NOTE if metrics["jax"] else _NO_JAX_NOTE}
""",
    )
    example = run.file("example.npz")
    if example.is_file():
        with np.load(example) as e:

            def hwc(a: np.ndarray) -> np.ndarray:
                return np.asarray(a).transpose(1, 2, 0)

            panels = [
                (f"FGSM, eps {ex['epsilon']:g}", hwc(e["original"]), hwc(e["fgsm"]),
                 e["p_original"], e["p_fgsm"]),
                (f"iterated, k={k}, eps/k={ex['epsilon'] / k:g}", hwc(e["original"]),
                 hwc(e["bim"]), e["p_original"], e["p_bim"]),
            ]  # fmt: skip
        fig = adversarial_example(
            run.figure("example.png"),
            panels,
            [str(i) for i in range(10)],
            title=f"Test image {ex['index']} (a {ex['label']}) attacked at eps {ex['epsilon']:g}",
            magnify=1 / max(ex["epsilon"], 1e-12),
        )
        rep.figure(
            "Results",
            fig,
            "Parts 1 and 3: original, perturbation (scaled to the "
            "full colour range), adversarial and the softmax outputs before and after.",
        )
    small = ex["smallest_epsilon"]
    rep.text(
        "Results",
        f"FGSM at eps {ex['epsilon']:g} turns the {ex['label']} into a **{ex['fgsm_prediction']}**"
        f" ({'fooled' if ex['fgsm_fooled'] else 'not fooled'}); the iterated attack (k = {k}) "
        f"into a **{ex['bim_prediction']}** "
        f"({'fooled' if ex['bim_fooled'] else 'not fooled'}). Smallest eps (grid step 0.01) that "
        f"fools this image: FGSM {_eps(small['fgsm'])}, iterated {_eps(small['bim'])}.",
    )
    rows = []
    for i, e in enumerate(cfg.epsilons):
        f, b = curves["fgsm"][i], curves["bim"][i]
        row = {"eps": e, "FGSM accuracy": f["robust_accuracy"],
               "FGSM success (correct ones)": f["success_rate"],
               f"iterated k={k} accuracy": b["robust_accuracy"],
               f"iterated k={k} success": b["success_rate"]}  # fmt: skip
        if metrics["jax"]:
            row["JAX FGSM accuracy"] = metrics["jax"]["fgsm"][i]
            row[f"JAX k={k} accuracy"] = metrics["jax"]["bim"][i]
        rows.append(row)
    rep.table("Results", rows, caption=f"Accuracy on {metrics['n_images']} test images")
    series: dict[str, Sequence[float]] = {
        "FGSM (PyTorch)": [r["robust_accuracy"] for r in curves["fgsm"]],
        f"iterated, k={k} (PyTorch)": [r["robust_accuracy"] for r in curves["bim"]],
    }
    if metrics["jax"]:
        series["FGSM (JAX)"] = metrics["jax"]["fgsm"]
        series[f"iterated, k={k} (JAX)"] = metrics["jax"]["bim"]
    fig = line_plot(
        run.figure("accuracy_vs_epsilon.png"),
        list(cfg.epsilons),
        series,
        title=f"{cfg.model} on {metrics['n_images']} MNIST test images",
        xlabel="epsilon (L-inf, pixel scale [0, 1])",
        ylabel="accuracy on adversarial images",
        ylim=(0, 1),
        styles={
            name: {"linestyle": "--", "marker": "x", "markersize": 9}
            for name in series
            if "JAX" in name
        },
    )
    rep.figure(
        "Results",
        fig,
        "Parts 2 and 4: accuracy against epsilon, both attacks"
        + (
            ", both backends (the JAX and PyTorch lines lie on top of each other)."
            if metrics["jax"]
            else ", PyTorch only (`jax=false`)."
        ),
    )
    rep.text("Analysis", _analysis(cfg, metrics))
    return rep


def _eps(value: float | None) -> str:
    return "not within the grid" if value is None else f"{value:g}"


def _analysis(cfg: FGSMMnistConfig, metrics: dict[str, Any]) -> str:
    curves, k = metrics["curves"], cfg.steps
    f, b = curves["fgsm"], curves["bim"]
    eps = list(cfg.epsilons)
    i3 = min(range(len(eps)), key=lambda i: abs(eps[i] - cfg.epsilon))
    small = metrics["example"]["smallest_epsilon"]
    acc_f = [r["robust_accuracy"] for r in f]
    acc_b = [r["robust_accuracy"] for r in b]
    monotone = all(later <= earlier for earlier, later in itertools.pairwise(acc_f))
    weaker = [e for e, af, ab in zip(eps, acc_f, acc_b, strict=True) if ab > af]
    stronger = not weaker
    lines = [
        f"- **Part 1.** At eps {eps[i3]:g} FGSM leaves {f[i3]['robust_accuracy']:.3f} accuracy "
        f"(success rate {f[i3]['success_rate']:.3f} among the correctly classified, 95% CI "
        f"{f[i3]['success_rate_ci'][0]:.3f}-{f[i3]['success_rate_ci'][1]:.3f}); the perturbation "
        "is a texture over the whole image, including the background, yet the digit stays "
        "readable to a human.",
        f"- **Part 2.** Accuracy falls from {f[0]['robust_accuracy']:.3f} at eps 0 to "
        f"{f[-1]['robust_accuracy']:.3f} at eps {eps[-1]:g}"
        + (
            ", never rising as eps grows."
            if monotone
            else "; it is not monotone: FGSM is one linearised step, and a larger step can "
            "overshoot "
            "the loss maximum."
        ),
        f"- **Parts 3 and 4.** Spending the same budget in k = {k} smaller steps is "
        + (
            "at least as strong at every eps"
            if stronger
            else f"stronger at most eps (not at eps {', '.join(f'{e:g}' for e in weaker)})"
        )
        + f": at eps {eps[i3]:g} the iterated attack leaves "
        f"{b[i3]['robust_accuracy']:.3f} accuracy against FGSM's {f[i3]['robust_accuracy']:.3f}. "
        f"On the chosen image, FGSM needs eps {_eps(small['fgsm'])} and the iterated attack "
        f"{_eps(small['bim'])}: each small step re-reads the gradient where the previous one "
        "landed, instead of trusting the linearisation at the start over the whole step.",
    ]
    if metrics["jax"]:
        gaps = metrics["jax_max_gap"]
        lines.append(
            f"- **JAX vs PyTorch.** Largest accuracy difference over all eps: FGSM "
            f"{100 * gaps['fgsm']:.2f} points, iterated {100 * gaps['bim']:.2f} points (target: "
            "within 0.5). The two backends differ only in float32 rounding, which can flip the "
            "sign of a gradient component that is almost zero."
        )
    return "\n".join(lines)


register_experiment(
    "fgsm-mnist",
    "seed 002: FGSM and iterated FGSM on an MNIST CNN, PyTorch and JAX",
    config=FGSMMnistConfig,
    execute=execute,
    report=report,
)
