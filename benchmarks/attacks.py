"""advlab's attacks side by side with torchattacks and ART, on one model and one image set.

Run from the repository root: ``make bench``, or
``ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/attacks.py``.

The model is a small MNIST CNN (conv 1->32 3x3, relu, maxpool 2, conv 32->64 3x3, relu,
maxpool 2, linear 1600->122, relu, linear 122->10: 215,368 parameters), trained here with
`advlab.train.fit` (Adam lr 1e-3, batch 128, seed 0) on the full MNIST training set and wrapped
as `ModelWrapper(net, bounds=(0, 1))`, without normalisation, so every library attacks the same
function of raw [0, 1] pixels. Its weights are kept in ``$ADVLAB_CACHE_DIR/benchmarks/`` under a
name that hashes the recipe, so reruns skip training (``--retrain`` trains again). The images
are 1,000 MNIST test images, `load_dataset("mnist", "test").take(1000, seed=0)` (a seeded,
class-stratified sample), on the CPU, with torch's default thread count.

Each side is timed with `time.perf_counter` around the attack call only, after a warm-up call
on 8 images; for advlab that call also checks the inputs and runs the forward pass that
decides success (torchattacks returns images only; its robust accuracy is computed afterwards,
outside the clock). FGSM and BIM: median of `--repeats` runs per side, alternating sides; PGD
and C&W: `--repeats-slow` runs. Robust accuracy is the fraction of the 1,000 images the model
still classifies correctly after the attack (clean mistakes count as broken).

- FGSM; BIM with 5 steps of eps/5 (torchattacks BIM(alpha=eps/5, steps=5)); PGD with 40
  steps of 2.5 * eps / 40 from the input itself (torchattacks PGD(random_start=False)); eps
  in {0.05, 0.1, 0.2, 0.3}.
- JSMA, targeted at (label + 1) % 10, theta = 1.0, gamma = 0.145 (advlab: epsilon = 113
  changed pixels), vs ART's SaliencyMapMethod (PyTorchClassifier over the same net, clip
  values (0, 1), batch_size = the batch advlab gets). Each side runs in its own subprocess,
  which times it and reports its peak resident memory (VmHWM) before and after the attack; a
  baseline subprocess only loads the model and the images. With more than one torch thread,
  both sides run once more on one thread.
- JSMA runs twice: at glibc's default allocator settings, and with every subprocess (ART's
  too) first calling `advlab.runtime.keep_freed_memory()`, as the `advlab` command does, so
  that freed blocks are reused instead of returned to the kernel. The other attacks run at
  the defaults.
- C&W L2 on the first `--cw-n` (200) images: advlab CarliniWagnerL2(binary_search_steps=1,
  steps=100, stepsize=0.01, confidence=0, initial_const=1) vs torchattacks CW(c=1, kappa=0,
  steps=100, lr=0.01).

Writes ``benchmarks/results/attacks.json`` and the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import README_FILE, machine_info, update_readme  # noqa: E402

from advlab.attacks.base import CPU_CHUNK  # noqa: E402
from advlab.fileio import cache_dir, write_atomic  # noqa: E402
from advlab.runtime import keep_freed_memory  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "attacks.json"
COMMAND = "ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/attacks.py"
N_IMAGES = 1000
DATA_SEED = 0
TRAIN = {"epochs": 3, "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "seed": 0}
HIDDEN = 122
EPSILONS = (0.05, 0.1, 0.2, 0.3)
BIM_STEPS = 5
PGD_STEPS = 40
PGD_REL_STEP = 2.5 / PGD_STEPS  # alpha = 2.5 * eps / 40 on both sides
JSMA_THETA = 1.0
JSMA_GAMMA = 0.145
CW_STEPS = 100
CW: dict[str, float] = {"steps": CW_STEPS, "c": 1.0, "lr": 0.01, "kappa": 0.0}
WARMUP = 8
# The targets of the issue.
ACC_AGREE_POINTS = 0.5
JSMA_SUCCESS_POINTS = 3.0
JSMA_SPEEDUP = 5.0
CW_L2_REL = 0.10

Result = dict[str, Any]


def log(message: str) -> None:
    print(f"[bench attacks] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- model and data


def make_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 5 * 5, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, 10),
    )


def recipe_key() -> str:
    text = repr(make_net()) + json.dumps(TRAIN, sort_keys=True) + torch.__version__
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def weights_path() -> Path:
    return cache_dir() / "benchmarks" / f"attacks-mnist-cnn-{recipe_key()}.pt"


def wrap(net: nn.Module) -> nn.Module:
    from advlab.models import ModelWrapper

    model = ModelWrapper(net, bounds=(0.0, 1.0)).eval()
    return model


def load_model(path: Path) -> nn.Module:
    net = make_net()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return wrap(net)


def train_model(retrain: bool) -> tuple[nn.Module, Result]:
    """The benchmark's model, trained now or loaded from the cache of an earlier run."""
    from advlab.data import load_dataset
    from advlab.train import TrainConfig, fit

    path = weights_path()
    info: Result = {"weights": str(path), "recipe": TRAIN, "hidden": HIDDEN}
    if path.is_file() and not retrain:
        log(f"reusing the trained weights {path}")
        info["trained_this_run"] = False
        model = load_model(path)
    else:
        x, y = load_dataset("mnist", "train").tensors()
        torch.manual_seed(0)
        net = make_net()
        log(
            f"training the CNN ({sum(p.numel() for p in net.parameters()):,} parameters) "
            f"for {TRAIN['epochs']} epochs on {len(x):,} images"
        )
        t0 = time.perf_counter()
        history = fit(net, (x, y), TrainConfig(**TRAIN), progress=False)  # type: ignore[arg-type]
        info["train_seconds"] = time.perf_counter() - t0
        info["train_accuracy_last_epoch"] = float(history.train_acc[-1])
        info["trained_this_run"] = True
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = path.with_suffix(".tmp")
        torch.save(net.state_dict(), buf)
        os.replace(buf, path)
        model = wrap(net)
        log(f"trained in {info['train_seconds']:.0f} s")
    info["parameters"] = sum(p.numel() for p in model.parameters())
    info["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    xt, yt = load_dataset("mnist", "test").tensors()
    info["test_accuracy_10000"] = float((predict(model, xt) == yt).float().mean())
    return model, info


def load_images(n: int = N_IMAGES) -> tuple[torch.Tensor, torch.Tensor]:
    from advlab.data import load_dataset

    x, y = load_dataset("mnist", "test").take(N_IMAGES, seed=DATA_SEED).tensors()
    return x[:n].contiguous(), y[:n].contiguous()


def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(xs).argmax(1) for xs in x.split(1000)])


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def l2_norms(x: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm((adv - x).flatten(1), dim=1)


# ----------------------------------------------------------------------------- FGSM, BIM, PGD


def gradient_attacks(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int, repeats_slow: int
) -> list[Result]:
    import torchattacks

    from advlab.attacks import BIM, FGSM, LinfPGD

    rows = []
    for name in ("FGSM", "BIM-5", "PGD-40"):
        for eps in EPSILONS:
            ours: Any
            if name == "FGSM":
                ours, theirs = FGSM(), torchattacks.FGSM(model, eps=eps)
            elif name == "BIM-5":
                ours = BIM(steps=BIM_STEPS)  # step eps / 5
                theirs = torchattacks.BIM(model, eps=eps, alpha=eps / BIM_STEPS, steps=BIM_STEPS)
            else:
                ours = LinfPGD(steps=PGD_STEPS, rel_stepsize=PGD_REL_STEP, random_start=False)
                theirs = torchattacks.PGD(
                    model, eps=eps, alpha=PGD_REL_STEP * eps, steps=PGD_STEPS, random_start=False
                )

            def run_ours(xs: torch.Tensor, ys: torch.Tensor, a: Any = ours, e: float = eps) -> Any:
                return a(model, xs, ys, epsilons=e)

            def run_theirs(xs: torch.Tensor, ys: torch.Tensor, a: Any = theirs) -> Any:
                return a(xs, ys)

            run_ours(x[:WARMUP], y[:WARMUP])
            run_theirs(x[:WARMUP], y[:WARMUP])
            reps = repeats_slow if name == "PGD-40" else repeats
            t_ours: list[float] = []
            t_theirs: list[float] = []
            for r in range(reps):  # alternate which side goes first
                for side in ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours"):
                    if side == "ours":
                        s, out_ours = timed(lambda: run_ours(x, y))
                        t_ours.append(s)
                    else:
                        s, adv_theirs = timed(lambda: run_theirs(x, y))
                        t_theirs.append(s)
            t_chunked: list[float] = []
            if name != "PGD-40":  # the peer fed advlab's CPU chunks, to show where the gain is
                for _ in range(reps):
                    s, _ = timed(
                        lambda: torch.cat(
                            [
                                run_theirs(xc, yc)
                                for xc, yc in zip(
                                    x.split(CPU_CHUNK), y.split(CPU_CHUNK), strict=True
                                )
                            ]
                        )
                    )
                    t_chunked.append(s)
            _, clipped, success = out_ours
            ours_broken = predict(model, clipped) != y
            t_predict, pred_theirs = timed(functools.partial(predict, model, adv_theirs))
            theirs_broken = pred_theirs != y
            row: Result = {
                "attack": name,
                "epsilon": eps,
                "advlab_seconds": t_ours,
                "torchattacks_seconds": t_theirs,
                "advlab_median_s": statistics.median(t_ours),
                "torchattacks_median_s": statistics.median(t_theirs),
                "advlab_robust": int((~success).sum()),
                "torchattacks_robust": int((~theirs_broken).sum()),
                "advlab_robust_accuracy": float((~success).float().mean()),
                "advlab_robust_accuracy_recomputed": float((~ours_broken).float().mean()),
                "torchattacks_robust_accuracy": float((~theirs_broken).float().mean()),
                "images_where_sides_disagree": int((ours_broken != theirs_broken).sum()),
                "max_abs_pixel_difference": float((clipped - adv_theirs).abs().max()),
                "advlab_linf": float((clipped - x).abs().amax()),
                "torchattacks_linf": float((adv_theirs - x).abs().amax()),
            }
            if t_chunked:
                row["torchattacks_chunked_seconds"] = t_chunked
                row["speed_ratio_vs_chunked_peer"] = (
                    statistics.median(t_chunked) / row["advlab_median_s"]
                )
            row["advlab_images_per_s"] = len(x) / row["advlab_median_s"]
            row["torchattacks_images_per_s"] = len(x) / row["torchattacks_median_s"]
            row["speed_ratio"] = row["advlab_images_per_s"] / row["torchattacks_images_per_s"]
            # advlab's call includes the forward pass that decides success; torchattacks plus
            # that forward pass (what its user runs to get the robust accuracy) is like for like.
            row["torchattacks_predict_s"] = t_predict
            row["speed_ratio_vs_attack_plus_predict"] = (
                row["torchattacks_median_s"] + t_predict
            ) / row["advlab_median_s"]
            robust_diff = row["advlab_robust"] - row["torchattacks_robust"]  # counts: exact
            row["accuracy_difference_points"] = 100 * robust_diff / len(x)
            rows.append(row)
            log(
                f"{name} eps {eps}: robust acc advlab {row['advlab_robust_accuracy']:.3f} "
                f"torchattacks {row['torchattacks_robust_accuracy']:.3f}; "
                f"{row['advlab_median_s']:.2f} s vs {row['torchattacks_median_s']:.2f} s "
                f"(ratio {row['speed_ratio']:.2f})"
            )
    return rows


def fgsm_all_epsilons(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> Result:
    """The accuracy-vs-eps curve: advlab's one call for every epsilon against one torchattacks
    call per epsilon (its FGSM takes one eps)."""
    import torchattacks

    from advlab.attacks import FGSM

    ours = FGSM()
    theirs = [torchattacks.FGSM(model, eps=eps) for eps in EPSILONS]
    t_ours = [timed(lambda: ours(model, x, y, epsilons=list(EPSILONS)))[0] for _ in range(repeats)]
    t_theirs = [timed(lambda: [a(x, y) for a in theirs])[0] for _ in range(repeats)]
    res: Result = {
        "epsilons": list(EPSILONS),
        "advlab_seconds": t_ours,
        "torchattacks_seconds": t_theirs,
        "speed_ratio": statistics.median(t_theirs) / statistics.median(t_ours),
    }
    log(f"FGSM, {len(EPSILONS)} epsilons in one call: ratio {res['speed_ratio']:.2f}")
    return res


# ----------------------------------------------------------------------------- C&W L2


def carlini_wagner(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int) -> Result:
    import torchattacks

    from advlab.attacks import CarliniWagnerL2

    ours = CarliniWagnerL2(
        binary_search_steps=1,
        steps=CW_STEPS,
        stepsize=CW["lr"],
        confidence=CW["kappa"],
        initial_const=CW["c"],
    )
    theirs = torchattacks.CW(model, c=CW["c"], kappa=CW["kappa"], steps=CW_STEPS, lr=CW["lr"])

    def run_ours(xs: torch.Tensor, ys: torch.Tensor) -> Any:
        return ours(model, xs, ys, epsilons=None)

    def run_theirs(xs: torch.Tensor, ys: torch.Tensor) -> Any:
        out = theirs(xs, ys)
        model.zero_grad(set_to_none=True)  # its cost.backward() also fills parameter grads
        return out

    run_ours(x[:WARMUP], y[:WARMUP])
    run_theirs(x[:WARMUP], y[:WARMUP])
    t_ours: list[float] = []
    t_theirs: list[float] = []
    for r in range(repeats):
        for side in ("ours", "theirs") if r % 2 == 0 else ("theirs", "ours"):
            if side == "ours":
                s, out_ours = timed(lambda: run_ours(x, y))
                t_ours.append(s)
            else:
                s, adv_theirs = timed(lambda: run_theirs(x, y))
                t_theirs.append(s)
    _, adv_ours, success_ours = out_ours
    success_theirs = predict(model, adv_theirs) != y
    n_ours, n_theirs = l2_norms(x, adv_ours), l2_norms(x, adv_theirs)
    both = success_ours & success_theirs
    res: Result = {
        "images": len(x),
        "params": CW,
        "advlab_seconds": t_ours,
        "torchattacks_seconds": t_theirs,
        "advlab_median_s": statistics.median(t_ours),
        "torchattacks_median_s": statistics.median(t_theirs),
        "advlab_success_rate": float(success_ours.float().mean()),
        "advlab_success_recomputed": float((predict(model, adv_ours) != y).float().mean()),
        "torchattacks_success_rate": float(success_theirs.float().mean()),
        "advlab_median_l2": float(n_ours[success_ours].median()),
        "torchattacks_median_l2": float(n_theirs[success_theirs].median()),
        "both_succeed": int(both.sum()),
        "median_l2_ratio_where_both_succeed": float((n_ours[both] / n_theirs[both]).median()),
        "clean_misclassified": int((predict(model, x) != y).sum()),
    }
    res["speed_ratio"] = res["torchattacks_median_s"] / res["advlab_median_s"]
    res["l2_relative_difference"] = res["advlab_median_l2"] / res["torchattacks_median_l2"] - 1
    log(
        f"C&W: success {res['advlab_success_rate']:.3f} vs {res['torchattacks_success_rate']:.3f}"
        f", median L2 {res['advlab_median_l2']:.3f} vs {res['torchattacks_median_l2']:.3f}; "
        f"{res['advlab_median_s']:.1f} s vs {res['torchattacks_median_s']:.1f} s"
    )
    return res


# ----------------------------------------------------------------------------- JSMA workers


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory (VmHWM starts afresh at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def jsma_worker(
    side: str, n: int, batch: int, weights: Path, threads: int | None, keep: bool = False
) -> Result:
    """One JSMA side in this (fresh) process: set up, warm up, time, measure memory."""
    if threads:
        torch.set_num_threads(threads)
    kept = keep_freed_memory() if keep else False
    model = load_model(weights)
    x, y = load_images(n)
    targets = (y + 1) % 10
    budget = int(JSMA_GAMMA * x[0].numel())  # 113 of 784 pixels
    out: Result = {"side": side, "images": n, "batch": batch, "threads": torch.get_num_threads(),
                   "keep_freed_memory": kept}  # fmt: skip
    if side == "baseline":
        out["peak_rss_mb"] = peak_rss_mb()
        return out
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    if side in ("advlab", "advlab-target"):
        from advlab.attacks import JSMA, TargetedMisclassification

        attack = JSMA(theta=JSMA_THETA, saliency="target" if side == "advlab-target" else "pairs")

        def run(xs: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
            advs = []
            for xb, tb in zip(xs.split(batch), ts.split(batch), strict=True):
                _, clipped, _ = attack(model, xb, TargetedMisclassification(tb), epsilons=budget)
                advs.append(clipped)
            return torch.cat(advs)
    else:
        import numpy as np
        from art.attacks.evasion import SaliencyMapMethod
        from art.estimators.classification import PyTorchClassifier

        clf = PyTorchClassifier(
            model=model,
            loss=nn.CrossEntropyLoss(),
            input_shape=tuple(x.shape[1:]),
            nb_classes=10,
            clip_values=(0.0, 1.0),
            device_type="cpu",
        )
        art_attack = SaliencyMapMethod(
            clf, theta=JSMA_THETA, gamma=JSMA_GAMMA, batch_size=batch, verbose=False
        )

        def run(xs: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
            onehot = np.eye(10, dtype=np.float32)[ts.numpy()]
            return torch.from_numpy(art_attack.generate(xs.numpy(), y=onehot))

    run(x[:WARMUP], targets[:WARMUP])
    out["setup_rss_mb"] = peak_rss_mb()
    seconds, adv = timed(lambda: run(x, targets))
    out["peak_rss_mb"] = peak_rss_mb()
    out["seconds"] = seconds
    hit = predict(model, adv) == targets
    changed = (adv != x).flatten(1).sum(1)
    out["budget"] = budget
    out["success"] = hit.tolist()
    out["changed"] = changed.tolist()
    out["successes"] = int(hit.sum())
    out["success_rate"] = float(hit.float().mean())
    out["success_rate_within_budget"] = float((hit & (changed <= budget)).float().mean())
    out["mean_fraction_changed_successes"] = (
        float((changed[hit].float() / x[0].numel()).mean()) if bool(hit.any()) else None
    )
    out["max_changed"] = int(changed.max())
    return out


def run_worker(
    side: str, n: int, batch: int, weights: Path, threads: int | None, keep: bool = False
) -> Result:
    cmd = [sys.executable, __file__, "--jsma-worker", side, "--jsma-n", str(n),
           "--jsma-batch", str(batch), "--weights", str(weights)]  # fmt: skip
    if threads:
        cmd += ["--threads", str(threads)]
    if keep:
        cmd.append("--keep-freed-memory")
    log(
        f"JSMA {side}: {n} images, batch {batch}{', freed memory kept' if keep else ''} "
        "(subprocess)"
    )
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise RuntimeError(f"JSMA worker {side} failed with exit code {done.returncode}")
    res: Result = json.loads(done.stdout.strip().splitlines()[-1])
    if "seconds" in res:
        log(
            f"JSMA {side}: {res['seconds']:.1f} s, success {res['success_rate']:.3f}, "
            f"peak RSS {res['peak_rss_mb']:.0f} MB"
        )
    return res


def jsma(
    weights: Path,
    n: int,
    batch: int,
    art_batch: int,
    extra_n: int,
    threads: int | None,
    keep: bool = False,
) -> Result:
    base = run_worker("baseline", n, batch, weights, threads, keep)
    ours = run_worker("advlab", n, batch, weights, threads, keep)
    ours_target = run_worker("advlab-target", n, batch, weights, threads, keep)
    theirs = run_worker("art", n, art_batch, weights, threads, keep)
    for side in (ours, ours_target, theirs):
        side["rss_increase_over_baseline_mb"] = side["peak_rss_mb"] - base["peak_rss_mb"]
        side["rss_increase_during_attack_mb"] = side["peak_rss_mb"] - side["setup_rss_mb"]
    agree = sum(a == b for a, b in zip(ours["success"], theirs["success"], strict=True))
    res: Result = {
        "images": n,
        "batch": batch,
        "art_batch": art_batch,
        "theta": JSMA_THETA,
        "gamma": JSMA_GAMMA,
        "targets": "(label + 1) % 10",
        "keep_freed_memory": keep,
        "baseline": base,
        "advlab": ours,
        "advlab_target": ours_target,
        "art": theirs,
        "success_difference_points": 100 * (ours["successes"] - theirs["successes"]) / n,
        "speed_ratio": theirs["seconds"] / ours["seconds"],
        "same_outcome_images": agree,
        "target_success_difference_points": (
            100 * (ours_target["successes"] - theirs["successes"]) / n
        ),
        "target_speed_ratio": theirs["seconds"] / ours_target["seconds"],
        "target_same_outcome_images": sum(
            a == b for a, b in zip(ours_target["success"], theirs["success"], strict=True)
        ),
    }
    if (threads or torch.get_num_threads()) > 1:
        # Both sides again on one torch thread: on shared CPUs, the many small tensor ops of
        # an iteration wait on each other's threads, and the ratio moves a lot with that.
        one = {
            side: run_worker(side, n, b_, weights, 1, keep)
            for side, b_ in (("advlab", batch), ("advlab-target", batch), ("art", art_batch))
        }
        res["one_thread"] = {
            "advlab_seconds": one["advlab"]["seconds"],
            "advlab_target_seconds": one["advlab-target"]["seconds"],
            "art_seconds": one["art"]["seconds"],
            "advlab_success_rate": one["advlab"]["success_rate"],
            "art_success_rate": one["art"]["success_rate"],
            "speed_ratio": one["art"]["seconds"] / one["advlab"]["seconds"],
            "target_speed_ratio": one["art"]["seconds"] / one["advlab-target"]["seconds"],
        }
    if extra_n > n:  # advlab alone on more images, in batches of `batch`
        res["advlab_extra"] = run_worker("advlab", extra_n, batch, weights, threads, keep)
    return res


# ----------------------------------------------------------------------------- main


def versions() -> Result:
    import art
    import torchattacks

    return {
        "torchattacks": torchattacks.__version__,
        "adversarial-robustness-toolbox": art.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of FGSM and BIM")
    parser.add_argument("--repeats-slow", type=int, default=1, help="timed runs of PGD, C&W")
    parser.add_argument("--cw-n", type=int, default=200, help="images for C&W (first n)")
    parser.add_argument("--jsma-n", type=int, default=300, help="images for JSMA, both sides")
    parser.add_argument("--jsma-batch", type=int, default=100, help="advlab's JSMA batch")
    parser.add_argument(
        "--art-batch",
        type=int,
        default=10,
        help="ART's batch_size (its fastest of 1, 10, 100 here)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--jsma-advlab-n",
        type=int,
        default=0,
        help="also run advlab's JSMA alone on this many images",
    )
    parser.add_argument("--retrain", action="store_true", help="train even if weights are cached")
    parser.add_argument("--jsma-worker", help=argparse.SUPPRESS)
    parser.add_argument("--keep-freed-memory", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jsma_worker:
        res = jsma_worker(
            args.jsma_worker,
            args.jsma_n,
            args.jsma_batch,
            args.weights,
            args.threads,
            args.keep_freed_memory,
        )
        print(json.dumps(res))
        return
    try:
        extra = versions()
    except ImportError:
        sys.exit("torchattacks and ART are missing: run `make bench`, which installs them")
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    model, model_info = train_model(args.retrain)
    counters = cpu_counters()  # other processes' CPU time from here to the end
    x, y = load_images()
    clean = float((predict(model, x) == y).float().mean())
    log(
        f"model: {model_info['parameters']:,} parameters, test accuracy "
        f"{model_info['test_accuracy_10000']:.4f} (10,000), {clean:.3f} on the {len(x)} images; "
        f"{torch.get_num_threads()} torch threads"
    )
    results: Result = {
        "command": COMMAND,
        "machine": {**machine_info(), **extra},
        "background_load": background_load(),
        "model": model_info,
        "images": {
            "n": len(x),
            "selection": f"load_dataset('mnist', 'test').take({N_IMAGES}, seed={DATA_SEED})",
            "clean_accuracy": clean,
        },
        "repeats": args.repeats,
        "repeats_slow": args.repeats_slow,
        "method": __doc__.split("\n\n", 3)[3].split("\n\nWrites")[0],
    }
    results["gradient"] = gradient_attacks(model, x, y, args.repeats, args.repeats_slow)
    results["fgsm_all_epsilons"] = fgsm_all_epsilons(model, x, y, args.repeats)
    results["jsma"] = jsma(
        weights_path(),
        args.jsma_n,
        args.jsma_batch,
        args.art_batch,
        args.jsma_advlab_n,
        args.threads,
    )
    if keep_freed_memory_works():
        results["jsma_kept"] = jsma(
            weights_path(), args.jsma_n, args.jsma_batch, args.art_batch, 0, args.threads, keep=True
        )
    results["cw"] = carlini_wagner(model, x[: args.cw_n], y[: args.cw_n], args.repeats_slow)
    results["total_seconds"] = time.perf_counter() - t_start
    results["background_load_end"] = background_load()
    results["others_cpu_share"] = others_share(
        counters, results["total_seconds"], results["machine"]["cpu_affinity"] or 1
    )
    write_atomic(RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    update_readme(table, "attacks")
    print(table)
    log(
        f"done in {results['total_seconds']:.0f} s; wrote "
        f"{RESULTS_FILE.relative_to(BENCH_DIR.parent)} and {README_FILE.name}"
    )


def background_load() -> list[float] | None:
    """The 1/5/15-minute load averages (they include this benchmark's own threads)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def cpu_counters() -> tuple[float, float] | None:
    """(CPU seconds all processes spent busy, CPU seconds of this process and its children)."""
    import resource

    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # minus idle, iowait
    own = sum(
        getattr(resource.getrusage(who), f)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for f in ("ru_utime", "ru_stime")
    )
    return busy / os.sysconf("SC_CLK_TCK"), own


def others_share(start: tuple[float, float] | None, wall: float, cpus: int) -> float | None:
    """Fraction of the machine's CPU time that other processes used since `start`."""
    end = cpu_counters()
    if start is None or end is None or wall <= 0:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, others) / (wall * max(cpus, 1))


def keep_freed_memory_works() -> bool:
    """Whether this platform has glibc's mallopt (asked in a child, leaving this process as is)."""
    code = "from advlab.runtime import keep_freed_memory as k; raise SystemExit(0 if k() else 1)"
    return subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def jsma_markdown(j: Result) -> list[str]:
    a, t, b = j["advlab"], j["art"], j["baseline"]
    at = j.get("advlab_target")
    lines = [
        (
            "**JSMA with freed memory kept**: every subprocess, ART's too, first calls "
            "`advlab.runtime.keep_freed_memory()` (glibc reuses freed blocks instead of "
            "returning them to the kernel; the `advlab` command does this at start-up). Targeted"
            if j.get("keep_freed_memory")
            else "**JSMA** at glibc's default allocator settings, targeted"
        )
        + f" at (label + 1) % 10, theta {j['theta']}, gamma {j['gamma']} "
        f"(advlab epsilon = {a['budget']} pixels), {j['images']} images; advlab in one batch of "
        f"{j['batch']}, ART with batch_size {j['art_batch']}. Each side runs once in its own "
        "subprocess; peak RSS is the process's high-water mark, 'over baseline' subtracts that "
        "of a process that only loads the model and the images "
        f"({b['peak_rss_mb']:.0f} MB), 'during the attack' subtracts the side's own mark "
        "after imports, set-up and warm-up. Ratio = ART time / advlab time. advlab runs "
        "Papernot's pair saliency map (`JSMA()`, the default) and ART's own simplified rule, "
        'the two features of largest target gradient (`JSMA(saliency="target")`): the '
        "second is the like-for-like comparison of the implementations.",
        "",
        "| side | success rate | mean fraction of pixels changed (successes) | most pixels "
        "changed | seconds | ratio | peak RSS | over baseline | during the attack |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sides = [("advlab JSMA() (pairs)", a, j["speed_ratio"])]
    if at is not None:
        sides.append(('advlab JSMA(saliency="target")', at, j["target_speed_ratio"]))
    sides.append(("ART SaliencyMapMethod", t, 1))
    for name, s, ratio in sides:
        frac = s["mean_fraction_changed_successes"]
        lines.append(
            f"| {name} | {100 * s['success_rate']:.1f}% | "
            f"{'' if frac is None else f'{100 * frac:.2f}%'} | {s['max_changed']} | "
            f"{s['seconds']:.1f} | {ratio:.2f}x | {s['peak_rss_mb']:.0f} MB | "
            f"{s['rss_increase_over_baseline_mb']:+.0f} MB | "
            f"{s['rss_increase_during_attack_mb']:+.0f} MB |"
        )
    diff = j["success_difference_points"]
    lines += [
        "",
        f"Success rates within {JSMA_SUCCESS_POINTS:g} points: "
        f"{verdict(abs(diff) <= JSMA_SUCCESS_POINTS)} (advlab - ART = {diff:+.1f} points; ART's "
        f"success rate counting only adversarials within {a['budget']} changed pixels: "
        f"{100 * t['success_rate_within_budget']:.1f}%; same outcome on "
        f"{j['same_outcome_images']} of {j['images']} images). advlab at least "
        f"{JSMA_SPEEDUP:g}x faster: {verdict(j['speed_ratio'] >= JSMA_SPEEDUP)} "
        f"({j['speed_ratio']:.1f}x)"
        + (
            f"; on one torch thread per side (a second pair of subprocesses) advlab took "
            f"{j['one_thread']['advlab_seconds']:.1f} s and ART "
            f"{j['one_thread']['art_seconds']:.1f} s: {j['one_thread']['speed_ratio']:.1f}x"
            if "one_thread" in j
            else ""
        )
        + ".",
    ]
    if at is not None:
        tdiff = j["target_success_difference_points"]
        lines += [
            "",
            f'Same rule as ART (`saliency="target"`): success within '
            f"{JSMA_SUCCESS_POINTS:g} points: {verdict(abs(tdiff) <= JSMA_SUCCESS_POINTS)} "
            f"({tdiff:+.1f} points; same outcome on {j['target_same_outcome_images']} of "
            f"{j['images']} images); at least {JSMA_SPEEDUP:g}x faster: "
            f"{verdict(j['target_speed_ratio'] >= JSMA_SPEEDUP)} ({j['target_speed_ratio']:.1f}x"
            + (
                f"; one thread: {j['one_thread']['target_speed_ratio']:.1f}x"
                if "one_thread" in j
                else ""
            )
            + ").",
        ]
    if "advlab_extra" in j:
        e = j["advlab_extra"]
        lines.append(
            f"advlab alone on {e['images']} images in batches of {e['batch']}: success "
            f"{100 * e['success_rate']:.1f}%, {e['seconds']:.1f} s, peak RSS "
            f"{e['peak_rss_mb']:.0f} MB ({e['peak_rss_mb'] - b['peak_rss_mb']:+.0f} MB over "
            "the baseline)."
        )
    return lines


def markdown(r: Result) -> str:
    m = r["machine"]
    share = r.get("others_cpu_share")
    lines = [
        f"Measured {m['date_utc']} on {m['cpu_model']} ({m['cpu_affinity']} CPUs, torch "
        f"{m['torch']} with {m['torch_threads']} threads, torchattacks {m['torchattacks']}, ART "
        f"{m['adversarial-robustness-toolbox']}, Python {m['python']})"
        + (
            ""
            if share is None
            else f"; other processes used {100 * share:.0f}% of the CPUs "
            "during the run" + (" (**shared machine: times are noisy**)" if share > 0.1 else "")
        )
        + f". Rerun with `{COMMAND}` (also part of `make bench`; {r['total_seconds'] / 60:.1f} "
        "min). Full numbers: `benchmarks/results/attacks.json`.",
        "",
        f"Model: {r['model']['parameters']:,}-parameter CNN, {r['model']['recipe']['epochs']} "
        f"epochs of Adam through `advlab.train.fit`, test accuracy "
        f"{100 * r['model']['test_accuracy_10000']:.2f}% (10,000 images). Images: "
        f"`{r['images']['selection']}`, clean accuracy {100 * r['images']['clean_accuracy']:.1f}%."
        f" Times: median of {r['repeats']} runs (FGSM, BIM) or {r['repeats_slow']} run(s) (PGD, "
        "C&W, JSMA) per side after a warm-up, attack call only; ratio = advlab images/s / peer "
        "images/s (above 1: advlab faster). advlab's call also runs the forward pass that "
        "decides success; 'vs + forward' adds that forward pass to torchattacks' time "
        "(what its user runs to get the robust accuracy). advlab works on CPU in chunks of "
        f"{CPU_CHUNK} images (`advlab.attacks.base.CPU_CHUNK`), which stay in cache; 'vs "
        f"chunked' feeds torchattacks the same chunks of {CPU_CHUNK}, so it shows how much of "
        "the ratio is that choice of default. glibc's allocator is at its defaults here "
        "(see the JSMA tables for `keep_freed_memory`).",
        "",
        "| attack | eps | robust acc. advlab | robust acc. torchattacks | difference (points) | "
        "advlab images/s | torchattacks images/s | ratio | vs + forward | vs chunked |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["gradient"]:
        chunked = row.get("speed_ratio_vs_chunked_peer")
        lines.append(
            f"| {row['attack']} | {row['epsilon']} | {100 * row['advlab_robust_accuracy']:.1f}% | "
            f"{100 * row['torchattacks_robust_accuracy']:.1f}% | "
            f"{row['accuracy_difference_points']:+.1f} | {row['advlab_images_per_s']:,.0f} | "
            f"{row['torchattacks_images_per_s']:,.0f} | {row['speed_ratio']:.2f}x | "
            f"{row['speed_ratio_vs_attack_plus_predict']:.2f}x | "
            + ("|" if chunked is None else f"{chunked:.2f}x |")
        )
    g = r["gradient"]
    worst_acc = max(abs(row["accuracy_difference_points"]) for row in g)
    slowest = min(g, key=lambda row: row["speed_ratio"])
    below = [
        f"{row['attack']} eps {row['epsilon']} ({row['speed_ratio']:.3f}x)"
        for row in g
        if row["speed_ratio"] < 1
    ]
    agree = worst_acc <= ACC_AGREE_POINTS
    lines += [
        "",
        f"Robust accuracies agree within {ACC_AGREE_POINTS} points: {verdict(agree)} "
        f"(largest difference {worst_acc:.1f} points; images where the "
        f"two sides disagree: at most {max(row['images_where_sides_disagree'] for row in g)} of "
        f"{r['images']['n']}). Throughput ratio >= 1: {verdict(not below)}"
        + (
            f"; below 1 for {', '.join(below)}"
            if below
            else f" (lowest {slowest['speed_ratio']:.2f}x)"
        )
        + ".",
        "",
    ]
    if "fgsm_all_epsilons" in r:
        f = r["fgsm_all_epsilons"]
        lines += [
            f"The accuracy-vs-eps curve of FGSM at eps {f['epsilons']}: advlab computes the "
            "gradient once for all epsilons in one call, torchattacks once per epsilon: "
            f"{f['speed_ratio']:.2f}x (median of {len(f['advlab_seconds'])} runs per side).",
            "",
        ]
    lines += jsma_markdown(r["jsma"])
    if "jsma_kept" in r:
        lines += ["", *jsma_markdown(r["jsma_kept"])]
    c = r["cw"]
    lines += [
        "",
        f"**C&W L2**, the first {c['images']} of the images, one run of "
        f"{c['params']['steps']:g} Adam steps (lr "
        f"{c['params']['lr']}, c = {c['params']['c']:g}, kappa 0) per side; ratio = "
        "torchattacks time / advlab time.",
        "",
        "| side | success rate | median L2 of successes | seconds | ratio |",
        "|---|---:|---:|---:|---:|",
        f"| advlab CarliniWagnerL2(binary_search_steps=1) | {100 * c['advlab_success_rate']:.1f}% "
        f"| {c['advlab_median_l2']:.3f} | {c['advlab_median_s']:.1f} | "
        f"{c['speed_ratio']:.2f}x |",
        f"| torchattacks CW | {100 * c['torchattacks_success_rate']:.1f}% | "
        f"{c['torchattacks_median_l2']:.3f} | {c['torchattacks_median_s']:.1f} | 1.00x |",
        "",
        f"Median L2 within {100 * CW_L2_REL:.0f}%: "
        f"{verdict(abs(c['l2_relative_difference']) <= CW_L2_REL)} "
        f"({100 * c['l2_relative_difference']:+.1f}%; on the {c['both_succeed']} images both "
        f"break, the median per-image ratio advlab/torchattacks is "
        f"{c['median_l2_ratio_where_both_succeed']:.3f}).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
