"""Sweeps: a grid of settings x seeds, each point an ordinary run, and one report over them all.

A sweep folder::

    <out>/<experiment>-sweep/<sweep-id>/
        sweep.json      the plan (grid, seeds, base overrides, device) and every point's status
        summary.json    per setting: mean, sample std, t interval and per-seed values of each metric
        report.md, report.html, figures/
        points/<point>/<experiment>/<timestamp>/    the point's run folder (`run_experiment`'s)

Names are derived, never drawn: the sweep id is a digest of (experiment, grid, seeds, base
overrides, device), a point's name is its settings, seed and a digest of both. The same command
therefore finds the same folders, which is what `resume` and a retried task rely on: a point
whose run folder says ``complete`` is never run again, and an unfinished one is continued with
``run_experiment(..., resume=True)``. ``status.json`` of the point's run is the truth; sweep.json
is rewritten (atomically) from it as points finish.

Grid strings (``--grid key=v1,v2,...``) are read by `advlab.overrides.parse_grid`; the report
is `advlab.report.sweep.write_sweep_report`.

Execution goes through an `advlab.backends.Backend`: every point is one ``map`` task calling
`execute_point` on a `PointTask` (plain data) and returning a `PointOutcome`. The local process
pool is the default; a Ray cluster runs the same tasks, so both write the same folders and
report. A task whose worker died past the backend's retries becomes a failed point.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advlab.backends import Backend, LocalBackend
from advlab.errors import ConfigError, RunError
from advlab.experiments import EXPERIMENTS, run_experiment
from advlab.fileio import digest, slug
from advlab.overrides import build_config, check_distinct, format_value
from advlab.progress import progress
from advlab.report.sweep import write_sweep_report
from advlab.runs import Run, write_json
from advlab.validation import check_int

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# The plan: points and names


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: grid settings and a seed.

    Args:
        name: Folder name under ``points/``, derived from settings and seed.
        settings: The swept keys' values at this point, in grid order.
        seed: The run's seed.
        overrides: Base overrides followed by the settings, as ``key=value`` strings.
    """

    name: str
    settings: dict[str, Any]
    seed: int
    overrides: tuple[str, ...]


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: what runs, under which names; `plan_sweep` builds it.

    Args:
        experiment: Registered experiment name.
        grid: Swept key -> values, in the given order.
        seeds: Seeds of every setting.
        base_overrides: ``key=value`` settings shared by every point.
        device: Device of every run.
        id: Folder name of the sweep, a digest of all of the above.
        points: Every (setting, seed), settings in grid order, seeds innermost.
    """

    experiment: str
    grid: dict[str, list[Any]]
    seeds: tuple[int, ...]
    base_overrides: tuple[str, ...]
    device: str
    id: str
    points: tuple[SweepPoint, ...]

    def folder(self, out: Path) -> Path:
        """The sweep folder under root `out`."""
        return Path(out) / f"{self.experiment}-sweep" / self.id


def point_name(settings: Mapping[str, Any], seed: int) -> str:
    """``lr-0.05_seed-0_1a2b3c4d``: readable settings, the seed, and a digest of both.

    The digest keeps names unique where the readable part is cut or loses characters (strings
    with slashes, lists).
    """
    readable = "_".join(f"{k}-{slug(format_value(v))}" for k, v in settings.items())[:80]
    tag = digest([dict(settings), seed])[:8]
    return f"{readable}_seed-{seed}_{tag}" if readable else f"seed-{seed}_{tag}"


def plan_sweep(
    experiment: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    seeds: int = 3,
    base_overrides: Sequence[str] = (),
    device: str = "cpu",
) -> SweepPlan:
    """Expand grid x seeds and check every setting against the experiment's config.

    Args:
        experiment: Registered experiment name.
        grid: Swept key -> values (e.g. from `parse_grid`); may be empty (seeds only).
        seeds: Number of seeds; seeds are 0 .. seeds-1.
        base_overrides: ``key=value`` settings for every point (like ``--set``).
        device: Device of every run.

    Returns:
        The plan. Raises `ConfigError` for an unknown key, a value of the wrong type, a swept
        ``seed``, or a key both in `base_overrides` and `grid`, before anything runs.
    """
    exp = EXPERIMENTS.get(experiment)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds: expected a positive number of seeds, got {seeds!r}")
    swept = {str(k): list(v) for k, v in grid.items()}
    base = tuple(base_overrides)
    base_keys = {item.partition("=")[0].strip() for item in base}
    for key, values in swept.items():
        if key == "seed":
            raise ConfigError("--grid seed=...: seeds are swept by --seeds N (seeds 0..N-1)")
        if key in base_keys:
            raise ConfigError(f"{key!r} is both swept (--grid) and fixed (--set); keep one")
        check_distinct(key, values, "--grid")
    if "seed" in base_keys:
        raise ConfigError("--set seed=...: a sweep sets each point's seed; use --seeds N")
    seed_list = tuple(range(seeds))
    points: list[SweepPoint] = []
    for combo in itertools.product(*swept.values()):
        settings = dict(zip(swept, combo, strict=True))
        overrides = (*base, *(f"{k}={format_value(v)}" for k, v in settings.items()))
        first = point_name(settings, seed_list[0])
        try:
            build_config(exp.config, overrides, seed=seed_list[0])
        except ConfigError as exc:
            raise ConfigError(f"sweep point {first}: {exc}") from None
        points += [SweepPoint(point_name(settings, s), settings, s, overrides) for s in seed_list]
    keys = "-".join(slug(k) for k in swept)[:40] or "seeds"
    spec = [experiment, list(swept.items()), list(seed_list), list(base), device]
    return SweepPlan(
        experiment=experiment,
        grid=swept,
        seeds=seed_list,
        base_overrides=base,
        device=device,
        id=f"{keys}-{digest(spec)[:10]}",
        points=tuple(points),
    )


# ---------------------------------------------------------------------------------------------
# Running points


@dataclass(frozen=True)
class PointTask:
    """What a backend ships to a worker: plain, picklable data.

    Args:
        experiment: Registered experiment name.
        name: The point's name (for the outcome).
        overrides: ``key=value`` settings of the run.
        seed: The run's seed.
        device: The run's device.
        folder: The point's folder (absolute); its run folder goes under it.
    """

    experiment: str
    name: str
    overrides: tuple[str, ...]
    seed: int
    device: str
    folder: Path


@dataclass(frozen=True)
class PointOutcome:
    """What became of a point.

    Args:
        name: The point's name.
        status: ``complete`` or ``failed``.
        run: Its run folder, if one was created.
        error: ``"ExceptionType: message"`` when failed.
        seconds: Wall time of this attempt (0 when reused).
        reused: The run was already complete before this sweep call.
    """

    name: str
    status: str
    run: Path | None
    error: str | None = None
    seconds: float = 0.0
    reused: bool = False


def execute_point(task: PointTask) -> PointOutcome:
    """Run one point; idempotent, so a backend may retry it.

    A complete run in the point's folder is returned as it is; an unfinished one (failed,
    interrupted) is continued with ``run_experiment(..., resume=True)``; otherwise a new run
    starts. Errors are returned in the outcome, never raised, so one point cannot stop others.
    """
    start = time.perf_counter()
    latest = _latest_run(task.experiment, task.folder)
    if latest is not None and latest.status() == "complete":
        return PointOutcome(task.name, "complete", latest.path, reused=True)
    try:
        if latest is not None:
            run = run_experiment(task.experiment, resume=True, device=task.device, out=task.folder)
        else:
            run = run_experiment(
                task.experiment,
                task.overrides,
                seed=task.seed,
                device=task.device,
                out=task.folder,
            )
    except Exception as exc:
        failed = _latest_run(task.experiment, task.folder)
        return PointOutcome(
            task.name,
            "failed",
            failed.path if failed is not None else None,
            f"{type(exc).__name__}: {exc}",
            time.perf_counter() - start,
        )
    return PointOutcome(task.name, "complete", run.path, seconds=time.perf_counter() - start)


def _latest_run(experiment: str, folder: Path) -> Run | None:
    try:
        return Run.latest(experiment, folder)
    except RunError:
        return None


# ---------------------------------------------------------------------------------------------
# The sweep


@dataclass(frozen=True)
class SweepResult:
    """A finished sweep call.

    Args:
        path: The sweep folder.
        plan: What was asked.
        points: One outcome per point, in plan order.
        summary: summary.json's content.
        report: report.html.
    """

    path: Path
    plan: SweepPlan
    points: tuple[PointOutcome, ...]
    summary: dict[str, Any]
    report: Path

    @property
    def failed(self) -> list[PointOutcome]:
        return [p for p in self.points if p.status != "complete"]

    @property
    def ran(self) -> list[PointOutcome]:
        """Points run (or attempted) by this call, as opposed to reused."""
        return [p for p in self.points if not p.reused]


def run_sweep(
    experiment: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    seeds: int = 3,
    base_overrides: Sequence[str] = (),
    device: str = "cpu",
    out: Path = Path("runs"),
    resume: bool = False,
    workers: int | None = None,
    metric: str | Sequence[str] | None = None,
    backend: Backend | None = None,
) -> SweepResult:
    """Run `experiment` at every grid setting x seed and write the sweep report.

    Args:
        experiment: Registered experiment name.
        grid: Swept key -> values (`parse_grid` reads ``--grid`` strings).
        seeds: Seeds 0 .. seeds-1 for every setting.
        base_overrides: ``key=value`` settings for every point.
        device: Device of every run.
        out: Root folder; the sweep goes to ``<out>/<experiment>-sweep/<id>/``.
        resume: Continue the sweep with this exact plan: complete points are reused, the
            others run (unfinished runs are continued). Without a sweep to continue, starts it.
        workers: Worker processes of the default `LocalBackend` (default min(2, points)).
        metric: Dotted path(s) into metrics.json reported besides the top-level numbers, e.g.
            ``"fgsm.-1.accuracy"`` (integers index lists); see `write_sweep_report`.
        backend: Where points run (default: `LocalBackend(workers)`).

    Returns:
        The outcome of every point, the summary and the report's path. Failed points are
        recorded, not raised; the sweep raises only for a bad plan or an existing sweep folder
        without `resume`.

    As with any process pool, a script that calls this needs an ``if __name__ ==
    "__main__":`` guard: workers import the caller's main module.
    """
    plan = plan_sweep(experiment, grid, seeds=seeds, base_overrides=base_overrides, device=device)
    folder = plan.folder(out)
    if backend is not None and workers is not None:
        raise ConfigError("workers: give the worker count to the backend, not both")
    if backend is None:
        count = min(2, len(plan.points)) if workers is None else workers
        check_int("--workers", count, minimum=1)
        backend = LocalBackend(count)
    if folder.exists() and not resume:
        raise RunError(
            f"{folder}: this sweep (same experiment, grid, seeds, overrides and device) has a "
            "folder already; resume it (--resume) or choose another --out"
        )
    if resume and not folder.exists():
        log.info("no sweep to resume in %s; starting it", folder)
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.absolute()

    outcomes: dict[str, PointOutcome] = {}
    for point in plan.points:
        done = _latest_run(plan.experiment, root / "points" / point.name)
        if done is not None and done.status() == "complete":
            outcomes[point.name] = PointOutcome(point.name, "complete", done.path, reused=True)
    tasks = [
        PointTask(
            plan.experiment, p.name, p.overrides, p.seed, plan.device, root / "points" / p.name
        )
        for p in plan.points
        if p.name not in outcomes
    ]
    log.info(
        "sweep %s: %d points, %d already complete, %d to run",
        folder,
        len(plan.points),
        len(outcomes),
        len(tasks),
    )
    info = backend.describe()
    _write_sweep_json(root, plan, outcomes, "running", info)
    try:

        def lost(i: int, error: str) -> PointOutcome:
            return PointOutcome(tasks[i].name, "failed", None, error)

        finished = backend.map(execute_point, tasks, on_lost=lost)
        for _, outcome in progress(finished, total=len(tasks), desc=f"sweep {experiment}"):
            outcomes[outcome.name] = outcome
            if outcome.status == "complete":
                log.info("point %s complete in %.1f s", outcome.name, outcome.seconds)
            else:
                log.warning("point %s failed: %s", outcome.name, outcome.error)
            _write_sweep_json(root, plan, outcomes, "running", info)
    except BaseException as exc:
        _write_sweep_json(root, plan, outcomes, "interrupted", info, f"{type(exc).__name__}")
        raise
    for point in plan.points:  # a backend that lost a task must not lose the point silently
        outcomes.setdefault(
            point.name, PointOutcome(point.name, "failed", None, "the backend returned no result")
        )
    n_failed = sum(o.status != "complete" for o in outcomes.values())
    status = "complete" if n_failed == 0 else "failed"
    error = f"{n_failed} of {len(plan.points)} points failed" if n_failed else None
    _write_sweep_json(root, plan, outcomes, status, info, error)
    report = write_sweep_report(folder, metric=metric)
    summary = json.loads((folder / "summary.json").read_text())
    return SweepResult(
        path=folder,
        plan=plan,
        points=tuple(outcomes[p.name] for p in plan.points),
        summary=summary,
        report=report,
    )


def _write_sweep_json(
    root: Path,
    plan: SweepPlan,
    outcomes: Mapping[str, PointOutcome],
    status: str,
    backend: dict[str, Any],
    error: str | None = None,
) -> None:
    points = []
    for p in plan.points:
        o = outcomes.get(p.name)
        run = os.path.relpath(o.run, root) if o is not None and o.run is not None else None
        complete = o is not None and o.status == "complete" and run is not None
        points.append(
            {
                "name": p.name,
                "settings": p.settings,
                "seed": p.seed,
                "overrides": list(p.overrides),
                "status": o.status if o is not None else "pending",
                "run": run,
                "metrics": f"{run}/metrics.json" if complete else None,
                "error": o.error if o is not None else None,
                "reused": o.reused if o is not None else False,
                "seconds": o.seconds if o is not None else None,
            }
        )
    write_json(
        root / "sweep.json",
        {
            "experiment": plan.experiment,
            "id": plan.id,
            "status": status,
            "error": error,
            "updated": dt.datetime.now().isoformat(),
            "keys": list(plan.grid),  # sweep.json's mappings are key-sorted; this keeps order
            "grid": plan.grid,
            "seeds": list(plan.seeds),
            "base_overrides": list(plan.base_overrides),
            "device": plan.device,
            "backend": backend,
            "points": points,
        },
    )
