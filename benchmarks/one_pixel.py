"""advlab's one-pixel attack side by side with torchattacks' OnePixel and ART's PixelAttack.

Run from the repository root: ``make bench``, or
``ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/one_pixel.py``.

The model is the training core's ResNet-18 on CIFAR-10 (imagenet stem, recipe A of
benchmarks/README.md) from the model store; the benchmark refuses to start without it (training
it takes about 50 minutes on 2 CPU cores: run the `advlab train` command of recipe A first). The
images are `load_dataset("cifar10", "test").take(n, seed=0)`; only the ones the model classifies
correctly are attacked, untargeted, with d = 1 pixel. Success is decided by the model's
prediction on each side's returned images, and the sides are compared image by image with an
exact McNemar test.

- Plain inference: images/s of the model on batches of 128 (the physical limit of the attack).
- Setting A, torchattacks' default budget: population 10, 10 generations. torchattacks
  `OnePixel(pixels=1, steps=10, popsize=10)` (scipy-style DE best1bin with recombination 1, one
  image at a time); advlab `OnePixel(population=10, max_generations=10, stop="misclassified")`
  with the paper's DE/rand/1. ART's PixelAttack fixes its population at 400 and is not run here.
- Setting B, the paper's population of 400 for `--generations-b` generations on the first
  `--n-b` correct images: all three (ART `PixelAttack(th=1, es=1, max_iter=G)`, population
  400 // 5 x 5).

Queries/s = model evaluations of candidates per second of attack wall time (advlab counts
them exactly; for the peers, `population x (1 + generations run)` is not observable, so their
rate is computed from a counting wrapper around the model). Writes
``benchmarks/results/one_pixel.json`` and the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import README_FILE, machine_info, update_readme  # noqa: E402

from advlab.analysis.robustness import mcnemar, proportion_ci  # noqa: E402
from advlab.fileio import write_atomic  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "one_pixel.json"
COMMAND = "ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/one_pixel.py"
SPEEDUP_A = 5.0
SPEEDUP_B = 1.3
INFERENCE_SHARE = 0.9

Result = dict[str, Any]


def log(message: str) -> None:
    print(f"[bench one-pixel] {message}", file=sys.stderr, flush=True)


class Counting(nn.Module):
    """Counts the images that go through `model` (the peers' queries)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.images += x.shape[0]
        return self.model(x)


def load(n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, str]:
    from advlab.data import load_dataset
    from advlab.train.recipes import resnet18_cifar10
    from advlab.train.store import load_model

    recipe = resnet18_cifar10("imagenet")
    path = recipe.folder() / "model.pt"
    if not path.is_file():
        sys.exit(f"{path}: no stored ResNet-18 (recipe A); train it first with the `advlab "
                 "train resnet18 ...` command of recipe A in benchmarks/README.md")  # fmt: skip
    x, y = load_dataset("cifar10", "test").take(n, seed=0).tensors()
    return load_model(path), x, y, recipe.key()


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(c).argmax(1) for c in x.split(256)])


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def inference_rate(model: nn.Module, x: torch.Tensor) -> float:
    """Images/s of plain batch-128 inference: median of 7 batches after 2 warm-up batches."""
    batch = x[:128] if len(x) >= 128 else x[:1].repeat(128, 1, 1, 1)
    with torch.no_grad():
        for _ in range(2):
            model(batch)
        rates = [128 / timed(lambda: model(batch))[0] for _ in range(7)]
    return statistics.median(rates)


def side(name: str, seconds: float, queries: int, broken: torch.Tensor) -> Result:
    k, n = int(broken.sum()), len(broken)
    return {"side": name, "seconds": seconds, "queries": queries,
            "queries_per_s": queries / seconds, "successes": k, "images": n,
            "success_rate": k / n, "success_ci": proportion_ci(k, n),
            "broken": broken.tolist()}  # fmt: skip


def ours(model: nn.Module, x: torch.Tensor, y: torch.Tensor, population: int,
         generations: int) -> Result:  # fmt: skip
    from advlab.attacks import OnePixel

    attack = OnePixel(population=population, max_generations=generations, stop="misclassified",
                      seed=0)  # fmt: skip
    attack.search(model, x[:2], y[:2], pixels=1)  # warm-up
    s, res = timed(lambda: attack.search(model, x, y, pixels=1))
    return side("advlab", s, int(res.queries.sum()), predict(model, res.adversarials) != y)


def torchattacks_side(model: nn.Module, x: torch.Tensor, y: torch.Tensor, popsize: int,
                      steps: int) -> Result:  # fmt: skip
    import torchattacks

    counting = Counting(model).eval()
    attack = torchattacks.OnePixel(counting, pixels=1, steps=steps, popsize=popsize,
                                   inf_batch=128)  # fmt: skip
    np.random.seed(0)
    attack(x[:1], y[:1])
    counting.images = 0
    s, adv = timed(lambda: attack(x, y))
    return side("torchattacks", s, counting.images, predict(model, adv) != y)


def art_side(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generations: int) -> Result:
    from art.attacks.evasion import PixelAttack
    from art.estimators.classification import PyTorchClassifier

    counting = Counting(model).eval()
    clf = PyTorchClassifier(model=counting, loss=nn.CrossEntropyLoss(), input_shape=(3, 32, 32),
                            nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")  # fmt: skip
    attack = PixelAttack(clf, th=1, es=1, max_iter=generations, targeted=False, verbose=False)
    np.random.seed(0)
    attack.generate(x[:1].numpy(), y=np.eye(10, dtype=np.float32)[y[:1].numpy()])
    counting.images = 0
    onehot = np.eye(10, dtype=np.float32)[y.numpy()]
    s, adv = timed(lambda: attack.generate(x.numpy(), y=onehot))
    return side("ART", s, counting.images, predict(model, torch.from_numpy(adv)) != y)


def compare(ref: Result, peer: Result) -> Result:
    test = mcnemar(torch.tensor(ref["broken"]), torch.tensor(peer["broken"]))
    return {"speed_ratio": peer["seconds"] / ref["seconds"],
            "success_difference_points": 100 * (ref["success_rate"] - peer["success_rate"]),
            "mcnemar": test, "not_lower": test["p_first_lower"] >= 0.05}  # fmt: skip


def main(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    model, x_all, y_all, key = load(args.n)
    correct = predict(model, x_all) == y_all
    x, y = x_all[correct], y_all[correct]
    log(f"ResNet-18 recipe {key}: {int(correct.sum())} of {len(y_all)} images correct; "
        f"{torch.get_num_threads()} torch threads")  # fmt: skip
    rate = inference_rate(model, x)
    log(f"plain inference: {rate:,.0f} images/s")
    res: Result = {
        "command": COMMAND,
        "machine": machine_info(),
        "model_recipe": key,
        "images": len(y_all),
        "correct": len(y),
        "inference_images_per_s": rate,
    }
    a_ours = ours(model, x, y, 10, 10)
    log(f"A advlab: {a_ours['seconds']:.1f} s, success {a_ours['success_rate']:.3f}")
    a_ta = torchattacks_side(model, x, y, 10, 10)
    log(f"A torchattacks: {a_ta['seconds']:.1f} s, success {a_ta['success_rate']:.3f}")
    res["A"] = {"population": 10, "generations": 10, "advlab": a_ours, "torchattacks": a_ta,
                "vs_torchattacks": compare(a_ours, a_ta)}  # fmt: skip
    n_b, g_b = min(args.n_b, len(y)), args.generations_b
    xb, yb = x[:n_b], y[:n_b]
    b_ours = ours(model, xb, yb, 400, g_b)
    log(f"B advlab: {b_ours['seconds']:.1f} s, success {b_ours['success_rate']:.3f}")
    b_ta = torchattacks_side(model, xb, yb, 400, g_b)
    log(f"B torchattacks: {b_ta['seconds']:.1f} s, success {b_ta['success_rate']:.3f}")
    b_art = art_side(model, xb, yb, g_b)
    log(f"B ART: {b_art['seconds']:.1f} s, success {b_art['success_rate']:.3f}")
    res["B"] = {"population": 400, "generations": g_b, "advlab": b_ours, "torchattacks": b_ta,
                "ART": b_art, "vs_torchattacks": compare(b_ours, b_ta),
                "vs_ART": compare(b_ours, b_art)}  # fmt: skip
    res["total_seconds"] = time.perf_counter() - t0
    write_atomic(RESULTS_FILE, json.dumps(res, indent=2) + "\n")
    table = markdown(res)
    update_readme(table, "one_pixel")
    print(table)
    log(f"done in {res['total_seconds']:.0f} s; wrote {RESULTS_FILE.name} and {README_FILE.name}")


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def markdown(r: Result) -> str:
    m = r["machine"]
    lines = [
        f"Measured {m['date_utc']} on {m['cpu_model']} ({m['cpu_affinity']} CPUs, torch "
        f"{m['torch']} with {m['torch_threads']} threads). Rerun with `{COMMAND}` "
        f"({r['total_seconds'] / 60:.1f} min). Model: ResNet-18, imagenet stem, recipe A "
        f"(`{r['model_recipe']}`); untargeted, d = 1, on the {r['correct']} correctly classified "
        f"of `load_dataset('cifar10', 'test').take({r['images']}, seed=0)`. Plain inference "
        f"(batch 128): **{r['inference_images_per_s']:,.0f} images/s**. Ratio = peer time / "
        "advlab time; McNemar p = exact one-sided p-value of 'advlab succeeds less often'.",
        "",
        "| setting | side | images | success rate (95% CI) | seconds | queries/s | share of "
        "plain inference | ratio | McNemar p |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("A", "B"):
        s = r[name]
        label = f"{name}: population {s['population']}, {s['generations']} generations"
        for peer in ("advlab", "torchattacks", "ART"):
            if peer not in s:
                continue
            p = s[peer]
            cmp = s.get(f"vs_{peer}")
            lo, hi = p["success_ci"]
            ratio = (
                f"{cmp['speed_ratio']:.2f}x | {cmp['mcnemar']['p_first_lower']:.3f} |"
                if cmp
                else "1.00x | |"
            )
            lines.append(
                f"| {label} | {peer} | {p['images']} | {100 * p['success_rate']:.1f}% "
                f"({100 * lo:.1f}-{100 * hi:.1f}) | {p['seconds']:.1f} | "
                f"{p['queries_per_s']:,.0f} | "
                f"{p['queries_per_s'] / r['inference_images_per_s']:.2f} | " + ratio
            )
    a, b = r["A"], r["B"]
    share = b["advlab"]["queries_per_s"] / r["inference_images_per_s"]
    slowest_b = min(b["vs_torchattacks"]["speed_ratio"], b["vs_ART"]["speed_ratio"])
    lines += [
        "",
        f"Success not lower (McNemar, 5%): vs torchattacks at A "
        f"{verdict(a['vs_torchattacks']['not_lower'])}, at B "
        f"{verdict(b['vs_torchattacks']['not_lower'])}; vs ART at B "
        f"{verdict(b['vs_ART']['not_lower'])}. At least {SPEEDUP_A:g}x faster than torchattacks "
        f"at A: {verdict(a['vs_torchattacks']['speed_ratio'] >= SPEEDUP_A)} "
        f"({a['vs_torchattacks']['speed_ratio']:.1f}x). At least {SPEEDUP_B:g}x faster than both "
        f"at B: {verdict(slowest_b >= SPEEDUP_B)} "
        f"({b['vs_torchattacks']['speed_ratio']:.2f}x, {b['vs_ART']['speed_ratio']:.2f}x). "
        f"advlab's query rate at B is {100 * share:.0f}% of plain inference (goal "
        f"{100 * INFERENCE_SHARE:.0f}%): {verdict(share >= INFERENCE_SHARE)}.",
    ]
    return "\n".join(lines)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="test images (correct ones attacked)")
    parser.add_argument("--n-b", type=int, default=100, help="correct images for setting B")
    parser.add_argument("--generations-b", type=int, default=5, help="generations in setting B")
    return parser.parse_args()


if __name__ == "__main__":
    main(parse())
