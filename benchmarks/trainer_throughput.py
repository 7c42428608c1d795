"""Throughput of advlab's `fit` vs a plain hand-written PyTorch loop, side by side in one run.

Run from the repository root: ``.venv/bin/python benchmarks/trainer_throughput.py``.

Both sides train the same small CIFAR-sized CNN (defined below, from the same initial weights)
on the same data (10,000 3x32x32 images: the first 10,000 CIFAR-10 training images when
ADVLAB_DATA_DIR holds CIFAR-10, otherwise uniform random tensors with random labels) with the
same SGD (lr 0.05, momentum 0.9), batch size 256 and no augmentation, for one epoch per
measurement. The data sits on the device before timing starts. A timed epoch covers everything
between the call and its return: building the optimizer, shuffling, every step, and for `fit`
its per-epoch loss/accuracy bookkeeping (the plain loop keeps no metrics). Warm-up epochs of
both run first and are not timed; then the two sides alternate (ABBA order) and the median of
`--repeats` epochs each is reported. On CUDA, `fit` runs with amp and channels_last off so that
both sides compute the same thing, and once more with its defaults (informational).

Writes ``benchmarks/results/trainer_throughput.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from advlab.errors import DataError
from advlab.fileio import write_atomic
from advlab.train import TrainConfig, fit

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "trainer_throughput.json"
COMMAND = ".venv/bin/python benchmarks/trainer_throughput.py"
N_IMAGES = 10_000
BATCH_SIZE = 256
LR = 0.05
MOMENTUM = 0.9
TARGET = 0.95  # the floor for fit's throughput relative to the plain loop

Result = dict[str, Any]
Epoch = Callable[[nn.Module, torch.Tensor, torch.Tensor, int], None]


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def make_cnn() -> nn.Sequential:
    """conv-relu-pool x3 (16, 32, 64 channels) and a linear layer: 32x32x3 in, 10 logits out."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 4 * 4, 10),
    )


def load_data(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(N, 3, 32, 32) float images in [0, 1], int64 labels, and what they are."""
    if os.environ.get("ADVLAB_DATA_DIR"):
        from advlab.data import load_dataset

        try:
            x, y = load_dataset("cifar10", "train").take(n).tensors(device)
            return x, y, f"CIFAR-10 train, first {len(x)} images"
        except DataError as exc:
            log(f"CIFAR-10 not usable ({exc}); using random tensors")
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    return x, y, f"{n} uniform random 3x32x32 tensors, random labels"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    """The loop a person writes by hand: shuffle, slice, forward, loss, backward, step."""
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    order = torch.randperm(len(x), generator=gen).to(x.device)
    for start in range(0, len(x), BATCH_SIZE):
        idx = order[start : start + BATCH_SIZE]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def fit_epoch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, *, cuda_defaults: bool
) -> None:
    cfg = TrainConfig(
        epochs=1,
        batch_size=BATCH_SIZE,
        lr=LR,
        momentum=MOMENTUM,
        seed=seed,
        amp=cuda_defaults,
        channels_last=cuda_defaults,
    )
    fit(model, (x, y), cfg, progress=False)


def timed(epoch: Epoch, model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
    """Seconds of one epoch, from the call to the end of its last kernel."""
    sync(x.device)
    t0 = time.perf_counter()
    epoch(model, x, y, seed)
    sync(x.device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per side")
    parser.add_argument("--n", type=int, default=N_IMAGES, help="training images")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = torch.device(args.device)
    x, y, data = load_data(args.n, device)  # (N, 3, 32, 32) in [0, 1], (N,)
    torch.manual_seed(0)
    init = make_cnn().to(device)

    sides: dict[str, Epoch] = {
        "plain": plain_epoch,
        "fit": functools.partial(fit_epoch, cuda_defaults=False),
    }
    if device.type == "cuda":
        sides["fit_cuda_defaults"] = functools.partial(fit_epoch, cuda_defaults=True)
    models = {name: copy.deepcopy(init) for name in sides}

    log(f"data: {data}; device {device}; warm-up")
    warm = min(len(x), 4 * BATCH_SIZE)
    for name, epoch in sides.items():
        timed(epoch, models[name], x[:warm], y[:warm], 0)

    seconds: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for rep in range(args.repeats):
        order = names if rep % 2 == 0 else names[::-1]  # ABBA: drift hits both sides alike
        for name in order:
            s = timed(sides[name], models[name], x, y, rep + 1)
            seconds[name].append(s)
            log(f"rep {rep + 1}: {name} {s:.3f} s ({len(x) / s:,.0f} images/s)")

    median = {name: statistics.median(v) for name, v in seconds.items()}
    ips = {name: len(x) / median[name] for name in sides}
    ratio = ips["fit"] / ips["plain"]
    machine = machine_info()
    results: Result = {
        "command": COMMAND,
        "machine": machine,
        "device": str(device),
        "data": data,
        "n_images": len(x),
        "batch_size": BATCH_SIZE,
        "optimizer": {"name": "sgd", "lr": LR, "momentum": MOMENTUM},
        "model": "conv(3->16)-relu-pool, conv(16->32)-relu-pool, conv(32->64)-relu-pool, "
        "linear(1024->10)",
        "parameters": sum(p.numel() for p in init.parameters()),
        "repeats": args.repeats,
        "method": __doc__.split("\n\n", 2)[2].split("\n\nWrites")[0].replace("\n", " "),
        "seconds_per_epoch": seconds,
        "median_seconds_per_epoch": median,
        "images_per_s": ips,
        "ratio_fit_to_plain": ratio,
        "target_ratio": TARGET,
        "meets_target": ratio >= TARGET,
    }
    write_atomic(RESULTS_FILE, json.dumps(results, indent=2) + "\n")
    log(f"wrote {RESULTS_FILE.relative_to(BENCH_DIR.parent)}")
    from run import update_readme

    update_readme(table(results), section="trainer_throughput")
    print(table(results))


def table(r: Result) -> str:
    m = r["machine"]
    labels = {
        "plain": "plain PyTorch loop",
        "fit": "advlab `fit`",
        "fit_cuda_defaults": "advlab `fit`, CUDA defaults (amp, channels_last)",
    }
    lines = [
        f"Trainer throughput, {r['data']}, batch {r['batch_size']}, SGD lr {LR} momentum "
        f"{MOMENTUM}, {r['parameters']:,}-parameter CNN, device {r['device']} "
        f"({m['cpu_model']}, {m['torch_threads']} torch threads, torch {m['torch']}); median of "
        f"{r['repeats']} one-epoch runs after warm-up, measured {m['date_utc']} "
        f"(`{r['command']}`).",
        "",
        "| trainer | median s / epoch | images/s | relative to plain loop |",
        "|---|---:|---:|---:|",
    ]
    for name, secs in r["median_seconds_per_epoch"].items():
        rel = r["images_per_s"][name] / r["images_per_s"]["plain"]
        lines.append(
            f"| {labels[name]} | {secs:.3f} | {r['images_per_s'][name]:,.0f} | {rel:.3f} |"
        )
    verdict = "meets" if r["meets_target"] else "misses"
    lines += [
        "",
        f"`fit` / plain = **{r['ratio_fit_to_plain']:.3f}** ({verdict} the "
        f"{r['target_ratio']} target).",
    ]
    return "\n".join(lines)


def machine_info() -> Result:
    # The data-layer benchmark's description of the machine, so both result files agree.
    sys.path.insert(0, str(BENCH_DIR))
    from run import machine_info as describe

    return dict(describe())


if __name__ == "__main__":
    main()
