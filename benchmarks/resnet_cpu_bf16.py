"""ResNet-18 (imagenet stem) training speed on CPU: float32 vs `cpu_bf16`, side by side.

Run from the repository root: ``ADVLAB_DATA_DIR=../shared/data .venv/bin/python
benchmarks/resnet_cpu_bf16.py``.

Both sides run advlab's `fit` for one epoch over the same `--images` CIFAR-10 training images
(batch 128, SGD with nesterov momentum, crop+flip augmentation: recipe A of the reference
results) from the same initial weights, after one untimed warm-up epoch each; then they
alternate and the median of `--repeats` epochs is reported. The ratio tells how long recipe A's
30 epochs take with `--set cpu_bf16=true` on this CPU. Writes
``benchmarks/results/resnet_cpu_bf16.json`` and the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import machine_info, update_readme  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "resnet_cpu_bf16.json"
COMMAND = "ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/resnet_cpu_bf16.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2560)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from advlab.data import load_dataset
    from advlab.models import ModelWrapper, create_model
    from advlab.train import TrainConfig, fit

    torch.set_num_threads(2)
    x, y = load_dataset("cifar10", "train").take(args.images, seed=0).tensors()
    torch.manual_seed(0)
    base = ModelWrapper(create_model("resnet18", num_classes=10, stem="imagenet"))
    sides = {"float32": False, "cpu_bf16": True}
    models = {k: copy.deepcopy(base) for k in sides}

    def epoch(name: str) -> float:
        cfg = TrainConfig(
            epochs=1,
            batch_size=128,
            lr=0.1,
            nesterov=True,
            weight_decay=5e-4,
            augment="crop_flip",
            cpu_bf16=sides[name],
        )
        start = time.perf_counter()
        fit(models[name], (x, y), cfg)
        return time.perf_counter() - start

    for name in sides:
        epoch(name)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.repeats):
        for name in list(sides) if r % 2 == 0 else list(reversed(sides)):
            times[name].append(epoch(name))
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["float32"] / med["cpu_bf16"]
    per_full_epoch = {k: v * 50000 / args.images for k, v in med.items()}
    res = {
        "machine": machine_info(),
        "images": args.images,
        "times": times,
        "median": med,
        "speedup": speedup,
        "full_epoch_estimate_s": per_full_epoch,
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(res, indent=2) + "\n")
    m = res["machine"]
    table = "\n".join(
        [
            f"Measured {m['date_utc']} on {m['cpu_model']} ({m['cpu_affinity']} CPUs, 2 threads, "
            f"torch {m['torch']}). Rerun with `{COMMAND}`.",
            "",
            f"| side | s per epoch of {args.images:,} images | estimated min per 50,000-image "
            "epoch | 30 epochs (recipe A) |",
            "|---|---|---|---|",
            *[
                f"| {k} | {v:.1f} | {per_full_epoch[k] / 60:.1f} | "
                f"{30 * per_full_epoch[k] / 3600:.1f} h |"
                for k, v in med.items()
            ],
            "",
            f"`cpu_bf16` speed-up: **{speedup:.2f}x** (median of {args.repeats} alternating "
            "epochs).",
        ]
    )
    update_readme(table, "resnet_cpu_bf16")
    print(table)


if __name__ == "__main__":
    main()
