"""Seed 003's ablation tables through both sweep backends, compared number for number.

Run from the repository root: ``.venv/bin/python benchmarks/seed003_backends.py`` (about 30
minutes on 2 cores: the eight ablation sweeps of ``make seed003``, 96 points, once on the local
process pool and once on a private Ray cluster of the same size).

Both backends run the same eight sweeps (the report's settings: 30 epochs for the softmax
classifier, the two-layer net's defaults, 3 seeds each) into two fresh folders, each point with
one torch/BLAS thread (the local pool's default for 2 workers on 2 cores; Ray's 1 CPU per
task). Then every point's metrics.json is compared between the two, every number and string
except the wall times (``epoch_seconds`` and the like, which differ from run to run), and each
sweep's table (validation and test accuracy, mean ± std over the seeds) is written for both.
``--resume`` semantics apply: a rerun into the same ``--out`` reuses finished points.

Writes ``benchmarks/results/seed003_backends.json`` and the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import machine_info, update_readme  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "seed003_backends.json"
COMMAND = ".venv/bin/python benchmarks/seed003_backends.py"
SWEEPS = [  # (experiment, fixed settings, grid item): the Makefile's seed003 target
    ("cifar-scratch-softmax", ("epochs=30",), "reg=0,0.001,0.01,0.1"),
    ("cifar-scratch-softmax", ("epochs=30",), "batch_size=128,256,512,1024"),
    ("cifar-scratch-softmax", ("epochs=30",), "lr=0.001,0.005,0.01,0.05"),
    ("cifar-scratch-softmax", ("epochs=30",), "lr_decay=1.0,0.99,0.9,0.8"),
    ("cifar-scratch-twolayer", (), "hidden=50,100,150,200"),
    ("cifar-scratch-twolayer", (), "batch_size=128,256,512,1024"),
    ("cifar-scratch-twolayer", (), "lr=0.2,0.1,0.05,0.01"),
    ("cifar-scratch-twolayer", (), "lr_decay=1.0,0.99,0.9,0.8"),
]
SEEDS = 3
METRICS = ("val_accuracy", "test_accuracy")


def _untimed(obj: Any) -> Any:
    """`obj` without its wall-time fields (keys holding "seconds"), which differ run to run."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _points(path: Path) -> dict[str, str]:
    """Every point's metrics.json without its wall times, as canonical JSON text."""
    saved = json.loads((path / "sweep.json").read_text())
    return {
        e["name"]: json.dumps(
            _untimed(json.loads((path / e["metrics"]).read_text())), sort_keys=True
        )
        for e in saved["points"]
    }


def _table(path: Path) -> list[dict[str, Any]]:
    summary = json.loads((path / "summary.json").read_text())
    return [
        {"settings": r["settings"], **{m: r["metrics"][m] for m in METRICS if m in r["metrics"]}}
        for r in summary["rows"]
    ]


def _cell(stats: dict[str, Any]) -> str:
    if stats.get("mean") is None:
        return "diverged"
    std = stats.get("std")
    return f"{stats['mean']:.4f}" + ("" if std is None else f" ± {stats['std']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/seed003-backends"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a check of this script: the first sweep at 1 epoch, 1 seed; prints "
        "the table, writes no results",
    )
    args = parser.parse_args()
    sweeps = [(SWEEPS[0][0], ("epochs=1",), SWEEPS[0][2])] if args.quick else SWEEPS
    seeds = 1 if args.quick else SEEDS

    from advlab.backends import LocalBackend, RayBackend
    from advlab.overrides import parse_grid
    from advlab.sweep import run_sweep

    backends = {"local": lambda: LocalBackend(2, threads=1),
                "ray": lambda: RayBackend(None, num_cpus=2)}  # fmt: skip
    results: dict[str, Any] = {"machine": machine_info(), "sweeps": []}
    walls = {name: 0.0 for name in backends}
    for experiment, fixed, item in sweeps:
        entry: dict[str, Any] = {"experiment": experiment, "fixed": list(fixed), "grid": item}
        paths = {}
        for name, make in backends.items():
            start = time.perf_counter()
            res = run_sweep(
                experiment,
                parse_grid([item]),
                seeds=seeds,
                base_overrides=fixed,
                out=args.out / name,
                resume=True,
                backend=make(),
            )
            wall = time.perf_counter() - start
            walls[name] += wall
            if res.failed:
                raise SystemExit(
                    f"{name} {experiment} {item}: {len(res.failed)} points failed: "
                    f"{res.failed[0].error}"
                )
            paths[name] = res.path
            entry[f"{name}_wall_s"] = wall
            entry[f"{name}_path"] = str(res.path)
            print(f"{name:5} {experiment} {item}: {wall:.0f} s", flush=True)
        local, ray = _points(paths["local"]), _points(paths["ray"])
        entry["points"] = len(local)
        entry["identical_points"] = sum(local[k] == ray.get(k) for k in local)
        entry["table_local"] = _table(paths["local"])
        entry["table_ray"] = _table(paths["ray"])
        entry["tables_equal"] = entry["table_local"] == entry["table_ray"]
        results["sweeps"].append(entry)
    results["wall_s"] = walls
    if not args.quick:
        RESULTS_FILE.parent.mkdir(exist_ok=True)
        tmp = RESULTS_FILE.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=2, default=str))
        tmp.replace(RESULTS_FILE)

    m = results["machine"]
    points = sum(e["points"] for e in results["sweeps"])
    same = sum(e["identical_points"] for e in results["sweeps"])
    lines = [
        f"Measured {m['date_utc']} on {m['cpu_model']} ({m['cpu_affinity']} CPUs). Rerun "
        f"with `{COMMAND}` (total {sum(walls.values()) / 60:.0f} min). Full numbers: "
        "`benchmarks/results/seed003_backends.json`.",
        "",
        f"**{same} of {points} points** have identical metrics.json on the two backends (every "
        "value but the wall times); "
        f"wall time local pool (2 workers) {walls['local'] / 60:.1f} min, Ray (private "
        f"2-CPU cluster) {walls['ray'] / 60:.1f} min.",
        "",
        "| sweep | setting | val. accuracy, local | val. accuracy, Ray | test accuracy, local "
        "| test accuracy, Ray |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for e in results["sweeps"]:
        label = f"`{e['experiment']}` {e['grid'].split('=')[0]}"
        for loc, ray_row in zip(e["table_local"], e["table_ray"], strict=True):
            setting = ", ".join(f"{k}={v}" for k, v in loc["settings"].items())
            lines.append(
                f"| {label} | {setting} | {_cell(loc['val_accuracy'])} | "
                f"{_cell(ray_row['val_accuracy'])} | {_cell(loc['test_accuracy'])} | "
                f"{_cell(ray_row['test_accuracy'])} |"
            )
    if not args.quick:
        update_readme("\n".join(lines), "seed003_backends")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
