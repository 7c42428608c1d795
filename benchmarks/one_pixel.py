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

Frozen rows: advlab with `OnePixel(frozen=True)` (candidates evaluated by the model's frozen
TorchScript copy, `advlab.models.frozen.freeze_for_inference`), and, in setting B,
torchattacks handed that same copy as its model: the like-for-like pair for the frozen
execution. Plain inference is measured for the model and for its copy.

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
SIDES = ("advlab", "advlab, frozen", "torchattacks", "torchattacks, frozen model", "ART")

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
        sys.exit(
            f"{path}: no stored ResNet-18 (recipe A); train it first with the `advlab "
            "train resnet18 ...` command of recipe A in benchmarks/README.md"
        )
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
    """Images/s of plain batch-128 inference: median of 15 batches after 5 warm-up batches."""
    batch = x[:128] if len(x) >= 128 else x[:1].repeat(128, 1, 1, 1)
    with torch.no_grad():
        for _ in range(5):
            model(batch)
        rates = [128 / timed(lambda: model(batch))[0] for _ in range(15)]
    return statistics.median(rates)


def side(name: str, seconds: float, queries: int, broken: torch.Tensor) -> Result:
    k, n = int(broken.sum()), len(broken)
    return {
        "side": name,
        "seconds": seconds,
        "queries": queries,
        "queries_per_s": queries / seconds,
        "successes": k,
        "images": n,
        "success_rate": k / n,
        "success_ci": proportion_ci(k, n),
        "broken": broken.tolist(),
    }


def ours(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    population: int,
    generations: int,
    frozen: bool = False,
) -> Result:
    from advlab.attacks import OnePixel

    attack = OnePixel(
        population=population,
        max_generations=generations,
        stop="misclassified",
        seed=0,
        frozen=frozen,
    )
    attack.search(model, x[:2], y[:2], pixels=1)  # warm-up (and, frozen, the cached copy)
    s, res = timed(lambda: attack.search(model, x, y, pixels=1))
    name = "advlab, frozen" if frozen else "advlab"
    return side(name, s, int(res.queries.sum()), predict(model, res.adversarials) != y)


def torchattacks_side(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    popsize: int,
    steps: int,
    name: str = "torchattacks",
) -> Result:
    import torchattacks

    counting = Counting(model).eval()
    if not any(True for _ in model.parameters()):  # the frozen copy: torchattacks reads its
        # device from the first parameter
        counting.device_probe = nn.Parameter(torch.zeros(0, device=x.device), requires_grad=False)
    attack = torchattacks.OnePixel(counting, pixels=1, steps=steps, popsize=popsize, inf_batch=128)
    np.random.seed(0)
    attack(x[:1], y[:1])
    counting.images = 0
    s, adv = timed(lambda: attack(x, y))
    return side(name, s, counting.images, predict(model, adv) != y)


def art_side(model: nn.Module, x: torch.Tensor, y: torch.Tensor, generations: int) -> Result:
    from art.attacks.evasion import PixelAttack
    from art.estimators.classification import PyTorchClassifier

    counting = Counting(model).eval()
    clf = PyTorchClassifier(
        model=counting,
        loss=nn.CrossEntropyLoss(),
        input_shape=(3, 32, 32),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    attack = PixelAttack(clf, th=1, es=1, max_iter=generations, targeted=False, verbose=False)
    np.random.seed(0)
    attack.generate(x[:1].numpy(), y=np.eye(10, dtype=np.float32)[y[:1].numpy()])
    counting.images = 0
    onehot = np.eye(10, dtype=np.float32)[y.numpy()]
    s, adv = timed(lambda: attack.generate(x.numpy(), y=onehot))
    return side("ART", s, counting.images, predict(model, torch.from_numpy(adv)) != y)


def compare(ref: Result, peer: Result) -> Result:
    test = mcnemar(torch.tensor(ref["broken"]), torch.tensor(peer["broken"]))
    return {
        "speed_ratio": peer["seconds"] / ref["seconds"],
        "success_difference_points": 100 * (ref["success_rate"] - peer["success_rate"]),
        "mcnemar": test,
        "not_lower": test["p_first_lower"] >= 0.05,
    }


def main(args: argparse.Namespace) -> None:
    from advlab.models.frozen import freeze_for_inference

    if args.render:  # the table again from the stored results, without measuring
        table = markdown(json.loads(RESULTS_FILE.read_text()))
        update_readme(table, "one_pixel")
        print(table)
        return

    t0 = time.perf_counter()
    model, x_all, y_all, key = load(args.n)
    correct = predict(model, x_all) == y_all
    x, y = x_all[correct], y_all[correct]
    log(
        f"ResNet-18 recipe {key}: {int(correct.sum())} of {len(y_all)} images correct; "
        f"{torch.get_num_threads()} torch threads"
    )
    rate = inference_rate(model, x)
    frozen_model = freeze_for_inference(model, x[:16])
    frozen_rate = inference_rate(frozen_model, x)
    log(f"plain inference: {rate:,.0f} images/s; frozen copy {frozen_rate:,.0f}")
    res: Result = {
        "command": COMMAND,
        "machine": machine_info(),
        "model_recipe": key,
        "images": len(y_all),
        "correct": len(y),
        "inference_images_per_s": rate,
        "frozen_inference_images_per_s": frozen_rate,
    }
    a: Result = {"population": 10, "generations": 10}
    a["advlab"] = ours(model, x, y, 10, 10)
    a["advlab, frozen"] = ours(model, x, y, 10, 10, frozen=True)
    a["torchattacks"] = torchattacks_side(model, x, y, 10, 10)
    for name in SIDES:
        if name in a:
            log(f"A {name}: {a[name]['seconds']:.1f} s, success {a[name]['success_rate']:.3f}")
    res["A"] = a
    n_b, g_b = min(args.n_b, len(y)), args.generations_b
    xb, yb = x[:n_b], y[:n_b]
    b: Result = {"population": 400, "generations": g_b}
    b["advlab"] = ours(model, xb, yb, 400, g_b)
    b["advlab, frozen"] = ours(model, xb, yb, 400, g_b, frozen=True)
    b["torchattacks"] = torchattacks_side(model, xb, yb, 400, g_b)
    b["torchattacks, frozen model"] = torchattacks_side(
        frozen_model, xb, yb, 400, g_b, name="torchattacks, frozen model"
    )
    b["ART"] = art_side(model, xb, yb, g_b)
    for name in SIDES:
        if name in b:
            log(f"B {name}: {b[name]['seconds']:.1f} s, success {b[name]['success_rate']:.3f}")
    res["B"] = b
    for setting in (a, b):
        # Each peer against advlab on the same model execution, and against advlab frozen.
        setting["vs_advlab"] = {
            name: compare(
                setting["advlab, frozen" if "frozen" in name else "advlab"], setting[name]
            )
            for name in SIDES
            if name in setting and not name.startswith("advlab")
        }
        setting["vs_advlab_frozen"] = {
            name: compare(setting["advlab, frozen"], setting[name])
            for name in SIDES
            if name in setting and name != "advlab, frozen"
        }
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
        f"(batch 128): **{r['inference_images_per_s']:,.0f} images/s**; its frozen copy "
        f"(`advlab.models.frozen.freeze_for_inference`): "
        f'**{r["frozen_inference_images_per_s"]:,.0f} images/s**. "frozen" rows evaluate the '
        "candidates with that copy (advlab: `OnePixel(frozen=True)`; torchattacks: handed the "
        "copy as its model). Ratio = that row's time / the time of advlab on the same model "
        "execution (eager or frozen); McNemar p = exact one-sided p-value of 'advlab succeeds "
        "less often' on the same pair.",
        "",
        "| setting | side | images | success rate (95% CI) | seconds | queries/s | share of "
        "plain inference | ratio | McNemar p | ratio to advlab, frozen |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("A", "B"):
        s = r[name]
        label = f"{name}: population {s['population']}, {s['generations']} generations"
        for peer in SIDES:
            if peer not in s:
                continue
            p = s[peer]
            cmp = s["vs_advlab"].get(peer)
            lo, hi = p["success_ci"]
            ratio = (
                f"{cmp['speed_ratio']:.2f}x | {cmp['mcnemar']['p_first_lower']:.3f} |"
                if cmp
                else "1.00x | |"
            )
            to_frozen = s["vs_advlab_frozen"].get(peer)
            ratio += f" {to_frozen['speed_ratio']:.2f}x |" if to_frozen else " 1.00x |"
            lines.append(
                f"| {label} | {peer} | {p['images']} | {100 * p['success_rate']:.1f}% "
                f"({100 * lo:.1f}-{100 * hi:.1f}) | {p['seconds']:.1f} | "
                f"{p['queries_per_s']:,.0f} | "
                f"{p['queries_per_s'] / r['inference_images_per_s']:.2f} | " + ratio
            )
    a, b = r["A"], r["B"]
    va, vb, fb = a["vs_advlab"], b["vs_advlab"], b["vs_advlab_frozen"]
    share = b["advlab"]["queries_per_s"] / r["inference_images_per_s"]
    share_frozen = b["advlab, frozen"]["queries_per_s"] / r["frozen_inference_images_per_s"]
    eager_b = min(vb["torchattacks"]["speed_ratio"], vb["ART"]["speed_ratio"])
    frozen_b = min(fb["torchattacks"]["speed_ratio"], fb["ART"]["speed_ratio"])
    same_b = vb["torchattacks, frozen model"]["speed_ratio"]
    not_lower = all(c["not_lower"] for c in [*va.values(), *vb.values()])
    # No attack on the eager model can beat the model's own inference speed: the ceiling of a
    # speed-up over a peer is plain inference over the peer's query rate.
    ceiling_a = r["inference_images_per_s"] / a["torchattacks"]["queries_per_s"]
    ceiling_b = r["inference_images_per_s"] / b["torchattacks"]["queries_per_s"]
    frozen_a = r["A"]["vs_advlab_frozen"]["torchattacks"]["speed_ratio"]
    lines += [
        "",
        f"Success not lower (McNemar, 5%) than every peer on the same model execution, at A and "
        f"B: {verdict(not_lower)}. At least {SPEEDUP_A:g}x faster than torchattacks at A: "
        f"{verdict(va['torchattacks']['speed_ratio'] >= SPEEDUP_A)} "
        f"({va['torchattacks']['speed_ratio']:.1f}x; the query-rate ceiling on this machine, plain "
        f"inference / torchattacks' query rate, is {ceiling_a:.1f}x; with `frozen=True` "
        f"{frozen_a:.1f}x). At least {SPEEDUP_B:g}x faster than both "
        f"at B, like for like (all on the eager model): {verdict(eager_b >= SPEEDUP_B)} "
        f"({vb['torchattacks']['speed_ratio']:.2f}x, {vb['ART']['speed_ratio']:.2f}x; ceiling "
        f"in query rate over torchattacks {ceiling_b:.2f}x); "
        f"torchattacks on the frozen copy against advlab frozen: {same_b:.2f}x. advlab with "
        f"`frozen=True` against the peers as they run a model they are given: "
        f"{verdict(frozen_b >= SPEEDUP_B)} ({fb['torchattacks']['speed_ratio']:.2f}x, "
        f"{fb['ART']['speed_ratio']:.2f}x). advlab's query rate at B is {100 * share:.0f}% of "
        f"plain inference (goal {100 * INFERENCE_SHARE:.0f}%): "
        f"{verdict(share >= INFERENCE_SHARE)}; frozen, {100 * share_frozen:.0f}% of the frozen "
        "copy's.",
    ]
    return "\n".join(lines)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="test images (correct ones attacked)")
    parser.add_argument("--n-b", type=int, default=100, help="correct images for setting B")
    parser.add_argument("--generations-b", type=int, default=5, help="generations in setting B")
    parser.add_argument(
        "--render",
        action="store_true",
        help=f"only rewrite the README table from {RESULTS_FILE.name}",
    )
    return parser.parse_args()


if __name__ == "__main__":
    main(parse())
