"""A 16-point tiny sweep on 1 and 2 workers, on the local process pool and on Ray, in one run.

Run from the repository root: ``.venv/bin/python benchmarks/sweep_scale.py`` (also part of
``make bench``; Ray comes with the ``cluster`` extra, which ``dev`` includes).

The sweep is the offline demo at test size (`TINY`: 1 epoch, width 4, 100 attacked images)
over 4 learning rates x 4 seeds = 16 points, each an ordinary run with its folder and report.
Each configuration runs the same sweep into a fresh folder and is timed from the call of
`run_sweep` to its return: worker start-up, imports, every point, the sweep report. Ray's
private cluster is started before the clock starts (``ray.init(num_cpus=workers)``) and
stopped after, as a user with a running cluster would see it. Per-task overhead is
(wall x workers - sum of the points' own run times) / points. All configurations must give
the same metrics for every point; the script checks that before writing anything.

Writes ``benchmarks/results/sweep_scale.json`` and the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import machine_info, update_readme  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "sweep_scale.json"
COMMAND = ".venv/bin/python benchmarks/sweep_scale.py"
TINY = ("epochs=1", "n_attack=100", "width=4", "epsilons=[0.0,0.1]", "n_examples=2")
GRID = {"lr": [0.02, 0.05, 0.1, 0.2]}
SEEDS = 4


def _metrics(path: Path) -> dict[str, str]:
    saved = json.loads((path / "sweep.json").read_text())
    return {e["name"]: (path / e["metrics"]).read_text() for e in saved["points"]}


def _one(name: str, backend: Any, out: Path) -> dict[str, Any]:
    from advlab.sweep import run_sweep

    start = time.perf_counter()
    result = run_sweep("demo", GRID, seeds=SEEDS, base_overrides=TINY, out=out, backend=backend)
    wall = time.perf_counter() - start
    if result.failed:
        raise SystemExit(f"{name}: {len(result.failed)} points failed: {result.failed[0].error}")
    own = sum(p.seconds for p in result.points)
    print(f"{name}: {wall:.1f} s", flush=True)
    return {"wall_s": wall, "points_s": own, "path": str(result.path)}


def main() -> None:
    import ray

    from advlab.backends import LocalBackend, RayBackend

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for workers in (1, 2):
            name = f"local, {workers} worker(s)"
            results[name] = _one(name, LocalBackend(workers, threads=1), root / f"l{workers}")
            results[name]["workers"] = workers
        for workers in (1, 2):
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            try:
                name = f"ray, {workers} worker(s)"
                results[name] = _one(name, RayBackend(), root / f"r{workers}")
                results[name]["workers"] = workers
            finally:
                ray.shutdown()
        reference = _metrics(Path(results["local, 1 worker(s)"]["path"]))
        for name, r in results.items():
            if _metrics(Path(r["path"])) != reference:
                raise SystemExit(f"{name}: metrics differ from the local 1-worker sweep")
            r["overhead_per_task_s"] = (r["wall_s"] * r["workers"] - r["points_s"]) / 16
            del r["path"]
    res = {"machine": machine_info(), "points": 16, "grid": GRID, "seeds": SEEDS,
           "settings": list(TINY), "results": results, "identical_metrics": True}  # fmt: skip
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(res, indent=2) + "\n")
    m = res["machine"]
    base = {w: results[f"local, {w} worker(s)"]["wall_s"] for w in (1, 2)}
    lines = [
        f"Measured {m['date_utc']} on {m['cpu_model']} ({m['cpu_affinity']} CPUs, torch "
        f"{m['torch']}, Ray {ray.__version__}). Rerun with `{COMMAND}`. The sweep: `demo` at "
        f"test size ({', '.join(TINY)}), lr in {GRID['lr']} x {SEEDS} seeds = 16 points; all "
        "four configurations gave identical metrics for every point.",
        "",
        "| backend | wall (s) | speed-up over 1 worker | vs local, same workers | "
        "overhead per task (s) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        one = results[name.replace("2 worker", "1 worker")]["wall_s"]
        lines.append(
            f"| {name} | {r['wall_s']:.1f} | {one / r['wall_s']:.2f}x | "
            f"{r['wall_s'] / base[r['workers']]:.2f}x | {r['overhead_per_task_s']:.2f} |"
        )
    lines += [
        "",
        "Overhead per task: (wall x workers - sum of the points' own run times) / 16, i.e. "
        "start-up, imports, scheduling and idle time at the end, spread over the points.",
    ]
    table = "\n".join(lines)
    update_readme(table, "sweep_scale")
    print(table)


if __name__ == "__main__":
    main()
