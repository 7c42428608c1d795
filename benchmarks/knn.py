"""Exact 1-NN on the full MNIST problem: advlab vs faiss, scikit-learn and torch, one run.

Run from the repository root: ``make bench``, or
``ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/knn.py``.

The problem: 10,000 test x 60,000 training images, 784 uint8 pixels, 1 nearest neighbour.
Every peer gets the data in the form it wants (float32 for faiss, torch and scikit-learn; the
uint8 arrays for advlab, as its data layer hands them over) before its clock starts; the time
covers building the index (if any) and the search. Each side runs `--repeats` times in
alternation and the median is reported. The slow peers (scikit-learn and torch.cdist under L1)
run on the first `--slice` test images and are scaled to the full test set (said in the table).
Peak resident memory of advlab's full searches is measured in a fresh subprocess.

Writes ``benchmarks/results/knn.json`` and the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import README_FILE, machine_info, update_readme  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "knn.json"
COMMAND = "ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/knn.py"
THREADS = 2


def log(message: str) -> None:
    print(f"[bench knn] {message}", file=sys.stderr, flush=True)


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from advlab.data import load_dataset

    tr, te = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    X = np.ascontiguousarray(np.asarray(tr.images).reshape(len(tr), -1))
    Q = np.ascontiguousarray(np.asarray(te.images).reshape(len(te), -1))
    return X, np.asarray(tr.labels), Q, np.asarray(te.labels)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# ----------------------------------------------------------------------------- the sides


def advlab_search(X: np.ndarray, Q: np.ndarray, metric: str) -> np.ndarray:
    from advlab.classic.knn import nearest_neighbors

    return nearest_neighbors(X, Q, 1, metric).indices[:, 0]  # type: ignore[arg-type]


def faiss_search(Xf: np.ndarray, Qf: np.ndarray, metric: str) -> np.ndarray:
    import faiss

    index = (
        faiss.IndexFlatL2(Xf.shape[1])
        if metric == "l2"
        else faiss.IndexFlat(Xf.shape[1], faiss.METRIC_L1)
    )
    index.add(Xf)
    return index.search(Qf, 1)[1][:, 0]  # type: ignore[no-any-return]


def sklearn_search(Xf: np.ndarray, Qf: np.ndarray, metric: str) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(
        n_neighbors=1,
        algorithm="brute",
        n_jobs=THREADS,
        metric="euclidean" if metric == "l2" else "manhattan",
    ).fit(Xf)
    return nn.kneighbors(Qf, return_distance=False)[:, 0]  # type: ignore[no-any-return]


def torch_cdist_l1(Xf: np.ndarray, Qf: np.ndarray) -> np.ndarray:
    import torch

    X, out = torch.from_numpy(Xf), []
    for s in range(0, len(Qf), 100):
        out.append(torch.cdist(torch.from_numpy(Qf[s : s + 100]), X, p=1).argmin(1))
    return torch.cat(out).numpy()


def torch_matmul(Xf: np.ndarray, Qf: np.ndarray) -> None:
    import torch

    X = torch.from_numpy(Xf)
    for s in range(0, len(Qf), 2000):  # same shapes as the L2 expansion, in 2,000-query blocks
        torch.from_numpy(Qf[s : s + 2000]) @ X.T


# ----------------------------------------------------------------------------- memory worker


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory. /proc's VmHWM starts afresh at exec;
    ru_maxrss (the fallback) can carry over the parent's peak from before the fork."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_worker() -> None:
    X, _, Q, _ = load()
    from advlab.classic import knn  # noqa: F401  (imports counted in the baseline)

    base = peak_rss_mb()
    for metric in ("l1", "l2"):
        advlab_search(X, Q, metric)
    print(json.dumps({"peak_rss_mb": peak_rss_mb(), "after_load_rss_mb": base}))


def measure_memory() -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--memory-worker"], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ----------------------------------------------------------------------------- main


def exact_ties(X: np.ndarray, Q: np.ndarray, metric: str) -> np.ndarray:
    """Queries whose two nearest training images are at exactly the same distance."""
    from advlab.classic.knn import nearest_neighbors

    d = nearest_neighbors(X, Q, 2, metric).distances  # type: ignore[arg-type]
    return d[:, 0] == d[:, 1]  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slice", type=int, default=500, help="test images for slow peers")
    parser.add_argument("--memory-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="re-measure only the peak memory; reuse the saved timings",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(THREADS)
    if args.memory_worker:  # before faiss is imported: measure advlab alone
        memory_worker()
        return
    if args.memory_only:
        saved = json.loads(RESULTS_FILE.read_text())
        saved["memory"] = measure_memory()
        RESULTS_FILE.write_text(json.dumps(saved, indent=2) + "\n")
        update_readme(markdown(saved), "knn")
        print(markdown(saved))
        return
    try:
        import faiss

        faiss.omp_set_num_threads(THREADS)
    except ImportError:
        sys.exit("faiss-cpu is missing: install the bench extra (pip install -e '.[bench]')")

    X, y, Q, yq = load()
    Xf, Qf = X.astype(np.float32), Q.astype(np.float32)
    full, part = len(Q), min(args.slice, len(Q))
    scale = full / part
    from advlab.classic.knn import kernel_isa

    log(f"MNIST {len(X)} x {len(Q)}, L1 kernel {kernel_isa()}, {args.repeats} repeats")
    sides: dict[str, dict[str, Callable[[], Any]]] = {
        "l2": {
            "advlab": lambda: advlab_search(X, Q, "l2"),
            "faiss IndexFlatL2": lambda: faiss_search(Xf, Qf, "l2"),
            "bare torch float32 matmul (same shapes)": lambda: torch_matmul(Xf, Qf),
            "scikit-learn brute": lambda: sklearn_search(Xf, Qf, "l2"),
        },
        "l1": {
            "advlab": lambda: advlab_search(X, Q, "l1"),
            "faiss IndexFlat(METRIC_L1)": lambda: faiss_search(Xf, Qf, "l1"),
            "scikit-learn brute": lambda: sklearn_search(Xf, Qf[:part], "l1"),
            "torch.cdist(p=1)": lambda: torch_cdist_l1(Xf, Qf[:part]),
        },
    }
    sliced = {("l1", "scikit-learn brute"), ("l1", "torch.cdist(p=1)")}
    once = {
        ("l1", "faiss IndexFlat(METRIC_L1)"),
        ("l1", "scikit-learn brute"),
        ("l1", "torch.cdist(p=1)"),
        ("l2", "scikit-learn brute"),
    }  # slow: one run each
    results: dict[str, Any] = {
        "machine": machine_info(),
        "kernel": kernel_isa(),
        "problem": {"train": len(X), "test": full, "dims": X.shape[1]},
        "slice": part,
        "repeats": args.repeats,
        "metrics": {},
    }
    for metric, peers in sides.items():
        times: dict[str, list[float]] = {name: [] for name in peers}
        preds: dict[str, Any] = {}
        for r in range(args.repeats):
            for name, fn in peers.items():
                if r > 0 and (metric, name) in once:
                    continue
                seconds, out = timed(fn)
                times[name].append(seconds * (scale if (metric, name) in sliced else 1))
                preds[name] = out
                log(f"{metric} {name}: {seconds:.2f} s")
        ours = preds["advlab"]
        ties = exact_ties(X, Q, metric)
        rows = []
        for name in peers:
            t = statistics.median(times[name])
            row: dict[str, Any] = {
                "side": name,
                "seconds": t,
                "runs": len(times[name]),
                "scaled_from_slice": (metric, name) in sliced,
            }
            if preds.get(name) is not None:
                theirs = np.asarray(preds[name])
                n = len(theirs)
                diff = ours[:n] != theirs
                row["compared"] = n
                row["disagreements"] = int(diff.sum())
                row["disagreements_not_ties"] = int((diff & ~ties[:n]).sum())
                row["label_disagreements"] = int((y[ours[:n]] != y[theirs]).sum())
            rows.append(row)
        base = rows[0]["seconds"]
        for row in rows:
            row["ratio_vs_advlab"] = row["seconds"] / base
        results["metrics"][metric] = {
            "rows": rows,
            "ties": int(ties.sum()),
            "accuracy": float((y[ours] == yq).mean()),
        }
    log("peak memory of advlab's full searches (fresh subprocess)")
    results["memory"] = measure_memory()
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    update_readme(table, "knn")
    print(table)
    log(f"wrote {RESULTS_FILE.relative_to(BENCH_DIR.parent)} and {README_FILE.name}")


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        f"Measured {m['date_utc']} on {m['cpu_model']} ({m['cpu_affinity']} CPUs, torch "
        f"{m['torch']} with {THREADS} threads, advlab L1 kernel `{res['kernel']}`). Rerun with "
        f"`{COMMAND}` (also part of `make bench`). Full numbers: `benchmarks/results/knn.json`.",
        "",
        f"Full problem: {res['problem']['test']:,} test x {res['problem']['train']:,} training "
        f"MNIST images, {res['problem']['dims']} uint8 pixels, exact 1-NN. Median of "
        f"{res['repeats']} runs for the fast sides, one run for the slow ones; sides marked * "
        f"ran on the first {res['slice']} test images and are scaled to 10,000.",
        "",
        "| metric | side | seconds (full problem) | time / advlab's | predictions compared | "
        "differ from advlab | of which not exact distance ties |",
        "|---|---|---|---|---|---|---|",
    ]
    for metric, block in res["metrics"].items():
        for row in block["rows"]:
            star = "*" if row["scaled_from_slice"] else ""
            cmp = (
                (
                    f"{row['compared']:,}",
                    str(row["disagreements"]),
                    str(row["disagreements_not_ties"]),
                )
                if "compared" in row and row["side"] != "advlab"
                else ("", "", "")
            )
            lines.append(
                f"| {metric.upper()} | {row['side']}{star} | {row['seconds']:.2f} | "
                f"{row['ratio_vs_advlab']:.2f}x | {' | '.join(cmp)} |"
            )
    mem = res["memory"]
    l1, l2 = res["metrics"]["l1"], res["metrics"]["l2"]
    lines += [
        "",
        f"advlab's 1-NN test accuracy: L1 {l1['accuracy']:.4f}, L2 {l2['accuracy']:.4f}. Test "
        f"images whose two nearest training images are at exactly the same distance: "
        f"{l1['ties']} (L1), {l2['ties']} (L2); peers may pick the other one of such a pair. "
        f"Peak resident memory of a process that loads MNIST and runs both full advlab "
        f"searches: {mem['peak_rss_mb']:.0f} MB ({mem['after_load_rss_mb']:.0f} MB after "
        "loading the data and importing torch).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    main()
