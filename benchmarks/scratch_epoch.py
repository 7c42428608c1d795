"""Epoch time of advlab's numpy two-layer net vs the same network in PyTorch, one run.

Run from the repository root: ``ADVLAB_DATA_DIR=../shared/data .venv/bin/python
benchmarks/scratch_epoch.py`` (also part of ``make bench``).

Both sides train affine 3072 -> 100, ReLU, affine 100 -> 10, softmax cross-entropy (mean over
the batch) with plain SGD at lr 0.1, batch size 128, on the same 49,000 CIFAR-10 images
(CS231n preprocessing, float32), from the same initial weights, one epoch per measurement,
shuffled the same way. Timing covers the epoch loop only (data already in memory, as float32
numpy arrays for advlab and as tensors for torch). Warm-up epochs are not timed; then the sides
alternate and the median of `--repeats` epochs each is reported, with 2 threads for both.

Writes ``benchmarks/results/scratch_epoch.json`` and the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import machine_info, update_readme  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "scratch_epoch.json"
COMMAND = "ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/scratch_epoch.py"
THREADS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_limits
    from torch.nn import functional as F

    from advlab.data.cs231n import cs231n_cifar10
    from advlab.scratch.net import mlp, sgd

    torch.set_num_threads(THREADS)
    x, y = cs231n_cifar10().splits["train"]
    net = mlp([3072, 100, 10], "relu", weight_scale=1e-3, seed=0)
    W1 = torch.tensor(net.layers[0].params["W"], requires_grad=True)
    b1 = torch.tensor(net.layers[0].params["b"], requires_grad=True)
    W2 = torch.tensor(net.layers[2].params["W"], requires_grad=True)
    b2 = torch.tensor(net.layers[2].params["b"], requires_grad=True)
    params = [W1, b1, W2, b2]
    opt = torch.optim.SGD(params, lr=0.1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_epoch(seed: int) -> None:
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
        for s in range(0, len(x), 128):
            idx = order[s : s + 128]
            loss = F.cross_entropy(torch.relu(xt[idx] @ W1 + b1) @ W2 + b2, yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def numpy_epoch(seed: int) -> None:
        with threadpool_limits(THREADS):
            sgd(net, x, y, lr=0.1, epochs=1, batch_size=128, seed=seed)

    sides = {
        "advlab numpy (scratch.sgd)": numpy_epoch,
        "PyTorch (same net, torch.optim.SGD)": torch_epoch,
    }
    for fn in sides.values():  # warm-up
        fn(0)
    times: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.repeats):
        for name, fn in sides.items() if r % 2 == 0 else reversed(list(sides.items())):
            start = time.perf_counter()
            fn(r + 1)
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    names = list(sides)
    ratio = med[names[0]] / med[names[1]]
    res: dict[str, Any] = {
        "machine": machine_info(),
        "times": times,
        "median": med,
        "ratio_numpy_over_torch": ratio,
        "images": len(x),
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(res, indent=2) + "\n")
    m = res["machine"]
    table = "\n".join(
        [
            f"Measured {m['date_utc']} on {m['cpu_model']} ({m['cpu_affinity']} CPUs, {THREADS} "
            f"threads, torch {m['torch']}, numpy {m['numpy']}). Rerun with `{COMMAND}`.",
            "",
            "| side | seconds per epoch (49,000 images, batch 128) | time / PyTorch's |",
            "|---|---|---|",
            *[f"| {k} | {v:.2f} | {v / med[names[1]]:.2f}x |" for k, v in med.items()],
            "",
            f"Target: the numpy net at most 1.2x PyTorch's epoch time; measured {ratio:.2f}x "
            f"(median of {args.repeats} epochs each, alternating).",
        ]
    )
    update_readme(table, "scratch_epoch")
    print(table)


if __name__ == "__main__":
    main()
