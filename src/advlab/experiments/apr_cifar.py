"""`apr-cifar`: seed 000 Task 4 - Adaptive Pixel Resilience against the one-pixel attack.

Fine-tunes the training core's ResNet-18 (recipe A, from the model store) with APR's three parts
and with each part alone (and with none, the control for the extra training), then sweeps the
adversarial mix ratio and the regularisation weight. Every model is attacked with advlab's
one-pixel attack on the same fixed, seeded test images with the same budget (d = 1, 3, 5), and
the full APR model also by the adaptive attackers of Task 4.2 (3): more pixels, Sparse-RS, the
transfer of the undefended model's adversarials. Every fine-tuned model is saved in the run
folder (`models/<name>.pt`), so `advlab run onepixel-cifar --set checkpoint=...` gives any of
them the full one-pixel analysis.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advlab.analysis.robustness import attack_summary
from advlab.attacks import OnePixel, SparseRS
from advlab.data import load_dataset
from advlab.defenses import APRConfig, attention_layer, fine_tune
from advlab.errors import ConfigError
from advlab.experiments.base import EXPERIMENTS, Context, Experiment
from advlab.fileio import atomic_path
from advlab.models import ModelWrapper
from advlab.report import Report, percent
from advlab.report.figures import bar_plot, image_grid, pareto_front, scatter_plot
from advlab.runs import Run
from advlab.train import TrainConfig
from advlab.train.checkpoint import load_checkpoint
from advlab.train.recipes import resnet18_cifar10
from advlab.train.store import ModelRecipe, get_trained, load_model, save_model

log = logging.getLogger(__name__)

UNDEFENDED = "undefended"
PUBLIC = ("public student reproductions: about 77% clean / 43% attack success undefended against "
          "72% / 31% with APR, budgets unstated (a reference, not a target)")  # fmt: skip


@dataclass(frozen=True)
class APRCifarConfig:
    """CPU budget: fine-tuning on 10,000 training images for 1 epoch; training examples from
    the one-pixel attack with population 40 and 5 generations on 25% of every batch; the
    evaluation attack with population 100 and 20 generations on the correct ones of 100 test
    images. The full budget for a GPU: ``--set finetune_images=50000 --set epochs=10 --set
    eval_population=400 --set eval_generations=100 --set n_images=1000``.
    """

    stem: str = "imagenet"
    checkpoint: str = ""  # a base model checkpoint instead of the stored ResNet-18
    finetune_images: int = 10_000
    epochs: int = 1
    lr: float = 0.01
    batch_size: int = 128
    weight_decay: float = 5e-4
    apr: APRConfig = field(default_factory=APRConfig)
    ablation: bool = True  # each part alone, and none
    mix_ratios: tuple[float, ...] = (0.1, 0.5)  # besides apr.adversarial_fraction
    reg_weights: tuple[float, ...] = (0.0, 0.2)  # besides apr.gradient_weight
    n_images: int = 100
    clean_images: int = 2000
    pixels: tuple[int, ...] = (1, 3, 5)
    eval_population: int = 100
    eval_generations: int = 20
    adaptive_pixels: tuple[int, ...] = (10,)
    sparse_rs_pixels: tuple[int, ...] = (1, 3, 5)
    sparse_rs_queries: int = 1000
    seed: int = 0


def variants(cfg: APRCifarConfig) -> dict[str, APRConfig | None]:
    """The models to compare: name -> APR settings (None: the undefended base, no training)."""
    full = cfg.apr
    out: dict[str, APRConfig | None] = {UNDEFENDED: None, "APR (all three)": full}
    if cfg.ablation:
        out["fine-tuned, no defence"] = replace(full, attention=False, adversarial=False,
                                               regularisation=False)  # fmt: skip
        out["adversarial training only"] = replace(full, attention=False, regularisation=False)
        out["attention only"] = replace(full, adversarial=False, regularisation=False)
        out["regularisation only"] = replace(full, attention=False, adversarial=False)
    for r in cfg.mix_ratios:
        if r != full.adversarial_fraction:
            out[f"APR, mix {r:g}"] = replace(full, adversarial_fraction=r)
    for w in cfg.reg_weights:
        if w != full.gradient_weight:
            out[f"APR, gradient weight {w:g}"] = replace(full, gradient_weight=w)
    return out


def _base(cfg: APRCifarConfig, ctx: Context) -> tuple[ModelWrapper, str, dict[str, Any]]:
    if cfg.checkpoint:
        path = Path(cfg.checkpoint)
        model = load_model(path, device=ctx.device)
        info = load_checkpoint(path, map_location="cpu")["model"]
        return model.eval(), f"checkpoint `{cfg.checkpoint}`", info
    recipe = resnet18_cifar10(cfg.stem)
    model = get_trained(recipe, device=ctx.device)
    what = f"torchvision ResNet-18, {cfg.stem} stem (recipe `{recipe.key()}`)"
    return model.eval(), what, {"name": recipe.model, "config": recipe.model_config}


def _saved_recipe(base: dict[str, Any], apr: APRConfig) -> ModelRecipe:
    if apr.attention:
        config = {"base": base["name"], "base_config": dict(base["config"]), "hidden": apr.hidden}
        return ModelRecipe("pixel_attention", "cifar10", config)
    return ModelRecipe(base["name"], "cifar10", dict(base["config"]))


def _one_pixel(
    cfg: APRCifarConfig,
    model: ModelWrapper,
    x: torch.Tensor,
    y: torch.Tensor,
    correct: np.ndarray,
    pixels: int,
) -> tuple[dict[str, Any], torch.Tensor]:
    attack = OnePixel(population=cfg.eval_population, max_generations=cfg.eval_generations,
                      stop="misclassified", seed=cfg.seed)  # fmt: skip
    idx = torch.nonzero(torch.as_tensor(correct, device=x.device)).flatten()
    fooled = np.zeros(len(y), dtype=bool)
    adv = x.clone()
    if len(idx):
        res = attack.search(model, x[idx], y[idx], pixels=pixels, image_ids=idx)
        pred = model.predict(res.adversarials)
        fooled[idx.cpu().numpy()] = (pred != y[idx]).cpu().numpy()
        adv[idx] = res.adversarials
    return attack_summary(correct, fooled), adv


def execute(cfg: APRCifarConfig, ctx: Context) -> dict[str, Any]:
    if cfg.finetune_images < 1 or cfg.n_images < 1 or not cfg.pixels:
        raise ConfigError(f"finetune_images, n_images, pixels: expected >= 1, >= 1 and a "
                          f"non-empty list, found {cfg.finetune_images}, {cfg.n_images}, "
                          f"{list(cfg.pixels)}")  # fmt: skip
    device = torch.device(ctx.device)
    with ctx.timed("base model"):
        base, what, base_info = _base(cfg, ctx)
    train = load_dataset("cifar10", "train").take(cfg.finetune_images, seed=cfg.seed)
    xtr, ytr = train.tensors(device)
    test = load_dataset("cifar10", "test")
    x, y = test.take(cfg.n_images, seed=cfg.seed).tensors(device)
    xc, yc = test.take(cfg.clean_images, seed=cfg.seed + 1).tensors(device)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, nesterov=True,
                       weight_decay=cfg.weight_decay, schedule="onecycle", augment="crop_flip",
                       seed=cfg.seed)  # fmt: skip
    folder = ctx.run.path / "models"
    folder.mkdir(exist_ok=True)
    models: dict[str, ModelWrapper] = {}
    out: dict[str, Any] = {"base": what, "variants": {}}
    for i, (name, apr) in enumerate(variants(cfg).items()):
        if apr is None:
            models[name] = base
            out["variants"][name] = {"parts": "none (the stored model)", "apr": None}
            continue
        path = folder / f"variant{i}.pt"
        if path.is_file():  # a resumed run keeps what it trained
            models[name] = load_model(path, device=ctx.device)
        else:
            log.info("fine-tuning %r (%s) on %d images, %d epoch(s)", name, apr.parts(),
                     len(xtr), cfg.epochs)  # fmt: skip
            with ctx.timed(f"fine-tune {name}"):
                model, history = fine_tune(base, (xtr, ytr), apr, tcfg,
                                           checkpoint=folder / f"variant{i}.training.pt",
                                           progress=ctx.progress)  # fmt: skip
            save_model(path, model, _saved_recipe(base_info, apr), (3, 32, 32), 10,
                       {"train_loss": history.train_loss})  # fmt: skip
            (folder / f"variant{i}.training.pt").unlink(missing_ok=True)
            models[name] = model
        out["variants"][name] = {"parts": apr.parts(), "apr": asdict(apr), "file": path.name,
                                 "seconds": ctx.timing.get(f"fine-tune {name}")}  # fmt: skip
    adversarials: dict[int, torch.Tensor] = {}
    correct_of: dict[str, np.ndarray] = {}
    for name, model in models.items():
        r = out["variants"][name]
        r["clean_accuracy"] = float((model.predict(xc) == yc).float().mean())
        correct = correct_of[name] = (model.predict(x) == y).cpu().numpy()
        r["one_pixel"] = {}
        for d in cfg.pixels:
            log.info("%s: one-pixel d = %d on %d correct images", name, d, int(correct.sum()))
            with ctx.timed(f"attack {name} d={d}"):
                r["one_pixel"][str(d)], adv = _one_pixel(cfg, model, x, y, correct, d)
            if name == UNDEFENDED:
                adversarials[d] = adv
    full = models["APR (all three)"]
    correct = correct_of["APR (all three)"]
    adaptive: dict[str, Any] = {}
    for d in cfg.adaptive_pixels:
        with ctx.timed(f"adaptive d={d}"):
            adaptive[f"one-pixel attack, d = {d}"] = _one_pixel(cfg, full, x, y, correct, d)[0]
    for k in cfg.sparse_rs_pixels:
        with ctx.timed(f"sparse-rs k={k}"):
            _, _, ok = SparseRS(max_queries=cfg.sparse_rs_queries, seed=cfg.seed)(
                full, x, y, epsilons=[k])
        adaptive[f"Sparse-RS, k = {k}, {cfg.sparse_rs_queries} queries"] = attack_summary(
            correct, ok[0].cpu().numpy())
    for d, adv in adversarials.items():
        fooled = (full.predict(adv) != y).cpu().numpy()
        adaptive[f"transfer of the undefended model's d = {d} adversarials"] = attack_summary(
            correct, fooled)
    out["adaptive"] = adaptive
    out["n_images"] = len(y)
    out["clean_images"] = len(yc)
    out["order"] = list(models)  # metrics.json sorts keys; the report keeps this order
    layer = attention_layer(full)
    if layer is not None:
        with torch.no_grad():
            normalised = x[:6]
            if full.mean is not None and full.std is not None:
                normalised = (normalised - full.mean) / full.std
            maps = layer.attention(normalised).cpu().numpy()
        with atomic_path(ctx.run.file("attention.npz")) as tmp:
            np.savez_compressed(tmp, images=x[:6].cpu().numpy(), maps=maps)
    return out


def report(cfg: APRCifarConfig, metrics: dict[str, Any], run: Run) -> Report:
    rep = Report("Adaptive Pixel Resilience against the one-pixel attack (seed 000, Task 4)",
                 run.path)  # fmt: skip
    a = cfg.apr
    rep.intro(
        f"Base model: {metrics['base']}. Each defended model is fine-tuned from it on "
        f"{cfg.finetune_images} training images for {cfg.epochs} epoch(s) (SGD, Nesterov, peak lr "
        f"{cfg.lr}, one-cycle, crop and flip). APR's parts: (1) one-pixel adversarial training, "
        f"{100 * a.adversarial_fraction:g}% of every batch replaced by d = {a.pixels} adversarials "
        f"of the current model (population {a.population}, {a.generations} generations); (2) the "
        f"pixel-wise attention gate in front of the ResNet (`advlab.defenses.with_pixel_attention`,"
        f" {a.hidden} hidden channels); (3) regularisation: {a.gradient_weight:g} x the mean of "
        f"the {a.gradient_top_k} largest per-pixel input-gradient L1 norms, plus "
        f"{a.attention_weight:g} x the attention map's closed fraction (the paper's exact terms "
        f"were not at hand; `advlab/defenses/training.py` says why these). Evaluation: clean "
        f"accuracy on {metrics['clean_images']} test images; the one-pixel attack (population "
        f"{cfg.eval_population}, {cfg.eval_generations} generations, stop at misclassification) "
        f"on the correctly classified of {metrics['n_images']} test images, the same for every "
        f"model. Rerun with `advlab run apr-cifar --seed {cfg.seed}`; {PUBLIC}."
    )  # fmt: skip
    names = metrics.get("order") or list(metrics["variants"])
    rows = []
    for name in names:
        r = metrics["variants"][name]
        row: dict[str, Any] = {"model": name, "parts": r["parts"],
                               "clean accuracy": percent(r["clean_accuracy"])}  # fmt: skip
        for d, s in r["one_pixel"].items():
            lo, hi = s["success_rate_ci"]
            row[f"success d={d}"] = f"{percent(s['success_rate'])} ({100 * lo:.0f}-{100 * hi:.0f})"
            row[f"robust acc. d={d}"] = percent(s["robust_accuracy"])
        rows.append(row)
    rep.table("1. Effectiveness", rows, caption="One-pixel attack success among correctly "
              "classified images (95% Wilson interval) and robust accuracy over all "
              "images.")  # fmt: skip
    ds = list(metrics["variants"][UNDEFENDED]["one_pixel"])
    fig = bar_plot(run.figure("success.png"), names,
                   {f"d = {d}": [metrics["variants"][n]["one_pixel"][d]["success_rate"]
                                 for n in names] for d in ds},
                   title="One-pixel attack success", xlabel="model",
                   ylabel="success among correct images", ylim=(0, 1))  # fmt: skip
    rep.figure("1. Effectiveness", fig, "Lower is more robust.")
    d0 = ds[0]
    points = {n: (metrics["variants"][n]["one_pixel"][d0]["success_rate"],
                  metrics["variants"][n]["clean_accuracy"]) for n in names}  # fmt: skip
    fig = scatter_plot(run.figure("tradeoff.png"), points, title="Security against accuracy",
                       xlabel=f"one-pixel success, d = {d0}", ylabel="clean accuracy")  # fmt: skip
    rep.figure("2. Security against accuracy", fig, "Each fine-tuned variant; the dashed line "
               f"joins the Pareto front ({', '.join(pareto_front(points))}).")
    adaptive = [{"attacker": k, "success among correct": percent(v["success_rate"]),
                 "robust accuracy": percent(v["robust_accuracy"])}
                for k, v in metrics["adaptive"].items()]  # fmt: skip
    rep.table("3. Adaptive attackers", adaptive, caption="Against the full APR model.")
    data = run.file("attention.npz")
    if data.is_file():
        with np.load(data) as npz:
            images, maps = npz["images"].transpose(0, 2, 3, 1), npz["maps"][:, 0]
        grid = np.stack([images, np.repeat(maps[..., None], 3, axis=-1)])
        fig = image_grid(run.figure("attention.png"), grid, title="APR attention maps",
                         row_labels=["image", "gate (white = open)"])  # fmt: skip
        rep.figure("3. Adaptive attackers", fig, "Where the gate lets pixels through.")
    return rep


EXPERIMENTS.add(
    "apr-cifar",
    Experiment(name="apr-cifar", summary="seed 000 Task 4: Adaptive Pixel Resilience on the "
               "CIFAR-10 ResNet-18: ablation, trade-off, adaptive attackers",
               config=APRCifarConfig, execute=execute, report=report),
    "seed 000 Task 4: Adaptive Pixel Resilience on the CIFAR-10 ResNet-18",
)
