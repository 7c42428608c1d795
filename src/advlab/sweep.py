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

Grid strings (``--grid`` on the command line, `parse_grid`): ``key=v1,v2,...``. Values are split
at commas outside brackets and quotes and each is typed like a ``--set`` value (OmegaConf's
dotlist, i.e. YAML): ``lr=0.1,0.01`` gives ``[0.1, 0.01]``, ``epochs=1,2`` gives ints,
``dataset=mnist-sample,cifar10`` strings. A list-valued setting is written in brackets, one list
per value: ``epsilons=[0.0,0.1],[0.0,0.1,0.3]``; a string holding a comma is quoted:
``name="a,b"``.

Execution goes through a `Backend`: anything with ``run(tasks) -> iterator of outcomes`` that
calls `execute_point` on each task somewhere. `LocalBackend` is a process pool on this machine
(the default); `RayBackend` ships the same `PointTask` objects (plain data) to a Ray cluster as
tasks and returns the same `PointOutcome`, so both write the same folders and report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any, Protocol, cast

from advlab.analysis.stats import format_mean_std, summarize
from advlab.errors import ConfigError, RunError
from advlab.experiments import EXPERIMENTS, build_config, run_experiment
from advlab.fileio import write_atomic
from advlab.progress import progress
from advlab.report.figures import line_plot
from advlab.report.render import Report, render_html
from advlab.runs import Run, write_json

log = logging.getLogger(__name__)

MAX_LINES = 6  # beyond this many combinations of the other keys, a figure pools them

# ---------------------------------------------------------------------------------------------
# Grid strings


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["lr=0.1,0.01", "width=8,16"]`` -> ``{"lr": [0.1, 0.01], "width": [8, 16]}``.

    See the module docstring for the syntax. Raises `ConfigError` naming the bad item.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, values = parse_grid_item(item)
        if key in grid:
            raise ConfigError(f"--grid {item!r}: {key!r} is already swept by an earlier --grid")
        grid[key] = values
    return grid


def parse_grid_item(item: str) -> tuple[str, list[Any]]:
    """``"lr=0.1,0.01"`` -> ``("lr", [0.1, 0.01])``."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--grid {item!r}: expected key=v1,v2,...")
    values = [_parse_value(token, item) for token in _split_values(text, item)]
    _check_distinct(key, values, f"--grid {item!r}")
    return key, values


def format_grid_item(key: str, values: Sequence[Any]) -> str:
    """The inverse of `parse_grid_item`: ``("lr", [0.1, 0.01])`` -> ``"lr=0.1,0.01"``."""
    return f"{key}=" + ",".join(format_value(v) for v in values)


def format_value(value: Any) -> str:
    """`value` as a dotlist (YAML flow) string that `build_config` reads back as `value`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        plain = _PLAIN.fullmatch(value) is not None and _parse_value(value, value) == value
        return value if plain else json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{format_value(str(k))}: {format_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    raise ConfigError(
        f"grid value {value!r}: expected a number, string, bool, null, list or mapping, "
        f"found {type(value).__name__}"
    )


_PLAIN = re.compile(r"[A-Za-z0-9_./+-]+")  # strings written without quotes when YAML agrees


def _split_values(text: str, item: str) -> list[str]:
    """Split at commas outside brackets, braces and quoted strings."""
    tokens: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'" and text[start:i].rstrip()[-1:] in ("", "[", "{", ",", ":"):
            quote = ch  # a quote opens a string only where a YAML scalar can start
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"--grid {item!r}: unbalanced {ch!r}")
        elif ch == "," and depth == 0:
            tokens.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise ConfigError(f"--grid {item!r}: unclosed bracket or quote")
    tokens.append(text[start:])
    tokens = [t.strip() for t in tokens]
    if not all(tokens):
        raise ConfigError(f"--grid {item!r}: empty value (two commas in a row, or a trailing one?)")
    return tokens


def _parse_value(token: str, item: str) -> Any:
    """Type `token` as OmegaConf types a ``--set key=token`` value."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        parsed = OmegaConf.to_container(OmegaConf.from_dotlist([f"value={token}"]))
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"--grid {item!r}: cannot read value {token!r}: {first}") from None
    return cast(dict[str, Any], parsed)["value"]


def _check_distinct(key: str, values: Sequence[Any], where: str) -> None:
    if not values:
        raise ConfigError(f"{where}: {key!r} has no values")
    for i, a in enumerate(values):
        if any(a == b for b in values[:i]):
            raise ConfigError(f"{where}: value {a!r} of {key!r} is given twice")


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
    readable = "_".join(f"{k}-{_slug(format_value(v))}" for k, v in settings.items())[:80]
    digest = _digest([dict(settings), seed])[:8]
    return f"{readable}_seed-{seed}_{digest}" if readable else f"seed-{seed}_{digest}"


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
        _check_distinct(key, values, "--grid")
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
    keys = "-".join(_slug(k) for k in swept)[:40] or "seeds"
    spec = [experiment, list(swept.items()), list(seed_list), list(base), device]
    return SweepPlan(
        experiment=experiment,
        grid=swept,
        seeds=seed_list,
        base_overrides=base,
        device=device,
        id=f"{keys}-{_digest(spec)[:10]}",
        points=tuple(points),
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-")


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()


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
                task.experiment, task.overrides, seed=task.seed, device=task.device,
                out=task.folder,
            )  # fmt: skip
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


class Backend(Protocol):
    """Where points run. `LocalBackend` is the default; a cluster backend implements the same."""

    def run(self, tasks: Sequence[PointTask]) -> Iterator[PointOutcome]:
        """Call `execute_point` on every task; yield each outcome as it finishes, any order."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings worth recording in sweep.json (kind, workers, threads)."""
        ...

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``fn(item)`` for every item (a picklable top-level function and plain data); yield
        ``(index, result)`` as each finishes; raise `RunError` when one fails. Sharded
        evaluations (`advlab.shards`) run their shards through it."""
        ...


class LocalBackend:
    """A process pool on this machine: embedded, no server.

    Workers fork from a forkserver that has imported advlab and torch once (spawn where there
    is no forkserver); torch does not survive a plain fork of a process that has used it.
    Each worker limits torch's and the BLAS libraries' threads to `threads`, default
    cores // workers, so workers do not fight over cores. The thread count depends on
    `workers` alone, not on how many points are left, so a resumed sweep computes with the
    same threads as the first call.

    Args:
        workers: Number of worker processes (at most this many points at once).
        threads: Torch threads per worker (default: usable cores // workers, at least 1).
    """

    def __init__(self, workers: int = 2, *, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads

    def _threads(self) -> int:
        return self.threads or max(1, _cpu_count() // self.workers)

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "workers": self.workers, "threads": self._threads()}

    def _pool(self, n: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=min(self.workers, n),
            mp_context=_mp_context(),
            initializer=_init_worker,
            initargs=(self._threads(), dict(os.environ), os.getcwd()),
        )

    def run(self, tasks: Sequence[PointTask]) -> Iterator[PointOutcome]:
        if self.workers < 1:
            raise ConfigError(f"--workers: expected at least 1, got {self.workers}")
        if not tasks:
            return
        executor = self._pool(len(tasks))
        try:
            futures = {executor.submit(execute_point, task): task for task in tasks}
            for future in as_completed(futures):
                task = futures[future]
                try:
                    yield future.result()
                except BrokenProcessPool as exc:
                    error = f"worker process died (killed, out of memory or crashed): {exc}"
                    yield PointOutcome(task.name, "failed", None, error)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``fn(item)`` for every item in the worker processes; yields ``(index, result)`` as
        each finishes. A task's exception is raised here, and `RunError` when a worker dies
        (what finished tasks wrote themselves stays)."""
        if self.workers < 1:
            raise ConfigError(f"--workers: expected at least 1, got {self.workers}")
        if not items:
            return
        executor = self._pool(len(items))
        try:
            futures = {executor.submit(fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    yield i, future.result()
                except BrokenProcessPool as exc:
                    raise RunError(f"task {i}: its worker process died (killed, out of memory "
                                   f"or crashed): {exc}") from None  # fmt: skip
        finally:
            executor.shutdown(wait=True, cancel_futures=True)


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _mp_context() -> BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # Imported once in the server (about 6 s of torch/torchvision), not once per worker;
        # the server never computes, so no thread pool or CUDA context is forked.
        ctx.set_forkserver_preload(["advlab.sweep"])
        return ctx
    return multiprocessing.get_context("spawn")


def _init_worker(threads: int, environ: dict[str, str], cwd: str) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    # A forkserver's children inherit the server's environment and folder, which may be older
    # than the caller's: take the caller's as they are now (data and cache locations).
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    torch.set_num_threads(threads)
    # numpy's BLAS has its own pool: two workers each spinning all cores made the demo's
    # preprocessing 15x slower than when run alone.
    threadpool_limits(threads)


class RayBackend:
    """Points as Ray tasks, on a running Ray cluster or one started here for the sweep.

    Each point is one task asking for `cpus` CPUs and `gpus` GPUs, so Ray places it on a node
    that has them (a GPU machine's tasks land on its GPUs: ``--device cuda`` with ``gpus=1``);
    inside the task torch uses `cpus` threads. Ray runs a task at least once: when its worker
    dies (killed, out of memory, node lost) Ray starts it again, up to `retries` times, and
    `execute_point` continues the point's unfinished run folder instead of starting a second
    one. A point counts once because its result is its own folder, ``points/<name>/``, whose
    files are written atomically; a retry finds what a finished attempt wrote and returns it.

    Every node must see the sweep folder at the same absolute path (a shared filesystem such
    as NFS, or one machine), and the same data and model-store locations: the caller's
    ``ADVLAB_*`` environment variables travel with each task.

    Args:
        address: ``ray://`` or ``host:port`` of a running cluster (``ray start --head`` prints
            it), ``"auto"`` for the one this machine belongs to, or None to start a private
            local cluster for the sweep and stop it afterwards.
        max_parallel: At most this many points in flight (default: as many as the cluster's
            resources allow).
        cpus: CPUs each task asks for, and torch's thread count inside it.
        gpus: GPUs each task asks for (fractions share a GPU).
        retries: How often Ray reruns a task whose worker died.
        num_cpus: CPUs of the private local cluster when `address` is None (default: all).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        max_parallel: int | None = None,
        cpus: float = 1,
        gpus: float = 0,
        retries: int = 3,
        num_cpus: int | None = None,
    ) -> None:
        self.address = address
        self.max_parallel = max_parallel
        self.cpus = cpus
        self.gpus = gpus
        self.retries = retries
        self.num_cpus = num_cpus

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ray",
            "address": self.address or "local",
            "max_parallel": self.max_parallel,
            "cpus_per_task": self.cpus,
            "gpus_per_task": self.gpus,
            "retries": self.retries,
        }

    def _check(self) -> None:
        if self.max_parallel is not None and self.max_parallel < 1:
            raise ConfigError(f"--max-parallel: expected at least 1, got {self.max_parallel}")
        if self.cpus <= 0 or self.gpus < 0 or self.retries < 0:
            raise ConfigError(
                f"ray backend: expected cpus > 0, gpus >= 0 and retries >= 0, found cpus="
                f"{self.cpus}, gpus={self.gpus}, retries={self.retries}"
            )

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """Ray, joined (or started) for the duration of the block; yields the module."""
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--backend ray needs Ray: pip install 'advlab[cluster]' (or ray)"
            ) from None
        started = False
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith("ADVLAB_")}
            kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
            if self.address is None:
                kwargs.update(num_cpus=self.num_cpus, include_dashboard=False)
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RunError(
                    f"--address {self.address}: cannot join the Ray cluster ({exc}); is "
                    "`ray start --head` running there?"
                ) from None
            started = True
        try:
            yield ray
        finally:
            if started:
                ray.shutdown()

    def _submit_all(
        self, ray: Any, remote: Any, args: Sequence[tuple[Any, ...]]
    ) -> Generator[tuple[int, Any], None, None]:
        """Submit ``remote.remote(*a)`` for each of `args`, at most `max_parallel` in flight;
        yields ``(index, object ref)`` of each finished task, any order."""
        limit = self.max_parallel or len(args)
        pending = list(range(len(args)))
        running: dict[Any, int] = {}
        try:
            while pending or running:
                while pending and len(running) < limit:
                    i = pending.pop(0)
                    running[remote.remote(*args[i])] = i
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    yield running.pop(ref), ref
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def _remote(self, ray: Any, fn: Callable[..., Any]) -> Any:
        return ray.remote(fn).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.retries,
            retry_exceptions=False,
        )  # fmt: skip

    def _each(
        self, target: Callable[..., Any], args: Sequence[tuple[Any, ...]]
    ) -> Iterator[tuple[int, Any, str | None]]:
        """``target(*a)`` for each of `args` as Ray tasks; yields ``(index, result, None)``, or
        ``(index, None, error)`` for a task Ray lost or that raised."""
        self._check()
        if not args:
            return
        with self._session() as ray:
            from ray.exceptions import RayError

            remote = self._remote(ray, target)
            submitted = self._submit_all(ray, remote, args)
            with contextlib.closing(submitted) as finished:  # cancels what runs if we stop early
                for i, ref in finished:
                    try:
                        yield i, ray.get(ref), None
                    except RayError as exc:
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        yield i, None, f"{type(exc).__name__}: {first}"

    def run(self, tasks: Sequence[PointTask]) -> Iterator[PointOutcome]:
        threads = max(1, int(self.cpus))
        for i, outcome, error in self._each(_ray_point, [(t, threads) for t in tasks]):
            if error is None:
                yield outcome
            else:
                lost = f"ray task lost after {self.retries} retries: {error}"
                yield PointOutcome(tasks[i].name, "failed", None, lost)

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """``fn(item)`` for every item as Ray tasks (each asks for `cpus` CPUs and `gpus`
        GPUs, and is retried up to `retries` times when its worker dies); yields ``(index,
        result)`` as each finishes. A task that raises, or is lost, raises `RunError`."""
        threads = max(1, int(self.cpus))
        for i, result, error in self._each(_ray_call, [(fn, it, threads) for it in items]):
            if error is not None:
                raise RunError(f"task {i} failed on the Ray cluster: {error}")
            yield i, result


def _ray_call(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    """``fn(item)`` inside a Ray worker, with torch and BLAS held to the task's CPUs."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        return fn(item)


def _ray_point(task: PointTask, threads: int) -> PointOutcome:
    """`execute_point` inside a Ray worker, with torch and BLAS held to the task's CPUs."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        return execute_point(task)


def make_backend(
    kind: str,
    *,
    workers: int | None = None,
    address: str | None = None,
    max_parallel: int | None = None,
    gpus: float = 0,
) -> Backend | None:
    """The backend named on the command line (``--backend local|ray``); None: the default."""
    if kind == "local":
        if address is not None or max_parallel is not None:
            raise ConfigError("--address and --max-parallel belong to --backend ray")
        return None if workers is None else LocalBackend(workers)
    if kind == "ray":
        if workers is not None:
            raise ConfigError("--workers belongs to --backend local; use --max-parallel")
        return RayBackend(address, max_parallel=max_parallel, gpus=gpus)
    raise ConfigError(f"--backend: expected local or ray, found {kind!r}")


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
        if count < 1:
            raise ConfigError(f"--workers: expected at least 1, got {count}")
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
        folder, len(plan.points), len(outcomes), len(tasks),
    )  # fmt: skip
    info = backend.describe()
    _write_sweep_json(root, plan, outcomes, "running", info)
    try:
        bar = progress(backend.run(tasks), total=len(tasks), desc=f"sweep {experiment}")
        for outcome in bar:
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


# ---------------------------------------------------------------------------------------------
# Summary and report


def metric_value(metrics: Any, path: str) -> float | None:
    """The number at dotted `path` in a metrics mapping, or None if absent or not a number.

    ``"clean_accuracy"`` is a top-level key; ``"fgsm.-1.accuracy"`` is key ``fgsm``, its last
    list item, then key ``accuracy``. A top-level key containing dots is found as it is.
    """
    node = metrics
    parts = [path] if isinstance(metrics, Mapping) and path in metrics else path.split(".")
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and re.fullmatch(r"-?\d+", part):
            index = int(part)
            if not -len(node) <= index < len(node):
                return None
            node = node[index]
        else:
            return None
    return float(node) if _is_number(node) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def write_sweep_report(folder: Path, *, metric: str | Sequence[str] | None = None) -> Path:
    """Write summary.json, figures and report.md/html of a sweep, from its folder alone.

    Metrics: every top-level number in the points' metrics.json, plus the dotted paths in
    `metric`. Table cells are mean ± sample std (ddof=1) over the seeds that completed.
    Figures, one per swept key and plotted metric, show the metric against the key's values
    with ±1 std error bars; one line per combination of the other swept keys (up to
    `MAX_LINES`, else the points of each value are pooled). Plotted metrics: `metric` when
    given, else every top-level number that varies across points.

    Returns:
        The path of report.html.
    """
    folder = Path(folder)
    sweep_file = folder / "sweep.json"
    if not sweep_file.is_file():
        raise RunError(f"{sweep_file}: missing; is {folder} a sweep folder?")
    sweep = json.loads(sweep_file.read_text())
    keys: list[str] = sweep["keys"]
    grid: dict[str, list[Any]] = sweep["grid"]
    points: list[dict[str, Any]] = sweep["points"]
    loaded: dict[str, Any] = {}
    for p in points:
        if p["status"] == "complete" and p["metrics"]:
            path = folder / p["metrics"]
            if path.is_file():
                loaded[p["name"]] = json.loads(path.read_text())
            else:
                log.warning("%s: missing although the point is complete", path)
    requested = [metric] if isinstance(metric, str) else list(metric or [])
    scalars = sorted({k for m in loaded.values() for k, v in m.items() if _is_number(v)})
    columns = scalars + [m for m in requested if m not in scalars]
    varying = [m for m in scalars if len({metric_value(v, m) for v in loaded.values()}) > 1]
    plotted = requested or varying or scalars[:1]
    missing = [m for m in requested if all(metric_value(v, m) is None for v in loaded.values())]

    def per_seed(group: Sequence[dict[str, Any]], name: str) -> list[tuple[int, float]]:
        found = ((p["seed"], metric_value(loaded.get(p["name"]), name)) for p in group)
        return [(seed, v) for seed, v in found if v is not None]

    def values(group: Sequence[dict[str, Any]], name: str) -> list[float]:
        return [v for _, v in per_seed(group, name)]

    groups: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault(_digest(p["settings"]), []).append(p)
    rows = []
    for group in groups.values():
        row: dict[str, Any] = {
            "settings": group[0]["settings"],
            "points": len(group),
            "complete": sum(p["name"] in loaded for p in group),
            "metrics": {},
        }
        for name in columns:
            pairs = per_seed(group, name)
            s = summarize(v for _, v in pairs)
            row["metrics"][name] = {
                "n": s.n,
                "mean": _finite(s.mean),
                "std": _finite(s.std),
                "ci95": [_finite(s.ci_low), _finite(s.ci_high)],
                "seeds": [seed for seed, _ in pairs],
                "values": [v for _, v in pairs],
            }
        rows.append(row)

    figures: list[tuple[Path, str]] = []
    if loaded:
        for key in keys:
            for name in plotted:
                if name not in missing:
                    figures.append(_figure(folder, sweep, key, name, values))
    failed = [
        {"point": p["name"], "settings": p["settings"], "seed": p["seed"], "error": p["error"]}
        for p in points
        if p["status"] != "complete"
    ]
    summary = {
        "experiment": sweep["experiment"],
        "id": sweep["id"],
        "keys": keys,
        "grid": grid,
        "seeds": sweep["seeds"],
        "metrics": columns,
        "plotted": plotted,
        "missing_metrics": missing,
        "rows": rows,
        "failed": failed,
        "figures": [os.path.relpath(f, folder) for f, _ in figures],
    }
    write_json(folder / "summary.json", summary)

    report = _report(folder, sweep, summary, figures)
    md = report.markdown()
    write_atomic(folder / "report.md", md)
    write_atomic(folder / "report.html", render_html(md, folder, title=report.title))
    return folder / "report.html"


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def _label(value: Any) -> str:
    return value if isinstance(value, str) else format_value(value)


def _figure(
    folder: Path,
    sweep: dict[str, Any],
    key: str,
    name: str,
    values: Callable[[Sequence[dict[str, Any]], str], list[float]],
) -> tuple[Path, str]:
    keys: list[str] = sweep["keys"]
    grid: dict[str, list[Any]] = sweep["grid"]
    xs = grid[key]
    numeric = all(_is_number(v) for v in xs)
    order = sorted(range(len(xs)), key=lambda i: xs[i]) if numeric else list(range(len(xs)))
    others = [k for k in keys if k != key]
    combos = list(itertools.product(*(grid[k] for k in others)))
    pooled = len(combos) > MAX_LINES
    lines: dict[str, dict[str, Any]] = (
        {"all settings pooled": {}}
        if pooled
        else {", ".join(f"{k}={_label(v)}" for k, v in zip(others, c, strict=True)) or name:
              dict(zip(others, c, strict=True)) for c in combos}
    )  # fmt: skip
    series: dict[str, Sequence[float]] = {}
    errors: dict[str, Sequence[float]] = {}
    for label, fixed in lines.items():
        means, stds = [], []
        for i in order:
            want = {**fixed, key: xs[i]}
            group = [
                p for p in sweep["points"]
                if all(p["settings"][k] == v for k, v in want.items())
            ]  # fmt: skip
            s = summarize(values(group, name))
            means.append(s.mean)
            stds.append(s.std)
        series[label], errors[label] = means, stds
    if numeric:
        x: list[float] = [float(xs[i]) for i in order]
        xlabel = key
    else:
        x = [float(i) for i in range(len(xs))]
        xlabel = f"{key} (" + "; ".join(f"{i} = {_label(v)}" for i, v in enumerate(xs)) + ")"
    n_seeds = len(sweep["seeds"])
    spread = "all points of each value" if pooled else f"{n_seeds} seed(s)"
    path = line_plot(
        folder / "figures" / f"{_slug(name)}-vs-{_slug(key)}.png",
        x,
        series,
        errors=errors,
        title=f"{sweep['experiment']} sweep: {name} vs {key}\n(mean ± std over {spread})",
        xlabel=xlabel,
        ylabel=name,
    )
    how = (
        "points of the other settings pooled"
        if pooled
        else ("one line per setting of " + ", ".join(others) if others else "one line")
    )
    caption = f"{name} against {key}: mean ± std over {spread}; {how}."
    return path, caption


def _report(
    folder: Path,
    sweep: dict[str, Any],
    summary: dict[str, Any],
    figures: Sequence[tuple[Path, str]],
) -> Report:
    experiment, keys = sweep["experiment"], summary["keys"]
    points = sweep["points"]
    n_ok = sum(p["status"] == "complete" for p in points)
    n_seeds = len(sweep["seeds"])
    rep = Report(
        f"Sweep of {experiment}: {' x '.join(keys) or 'seeds only'}, {n_seeds} seed(s)", folder
    )
    command = " ".join(
        [f"advlab sweep {experiment}"]
        + [f"--grid '{format_grid_item(k, summary['grid'][k])}'" for k in keys]
        + [f"--seeds {n_seeds}"]
    )
    base = ", ".join(f"`{o}`" for o in sweep["base_overrides"]) or "none"
    rep.intro(
        f"{len(points)} points ({len(summary['rows'])} setting(s) x {n_seeds} seed(s)) on "
        f"{sweep['device']}: {n_ok} complete, {len(points) - n_ok} failed. Command: "
        f"`{command}`; settings shared by every point: {base}."
    )
    rep.text(
        "Methodology",
        f"""
Each point is an ordinary run of `{experiment}` with the shared settings, the point's grid
values and a seed in 0..{n_seeds - 1}; its whole run folder (config, metrics, report, log)
is under `points/<point>/`. A table cell is the mean ± sample standard deviation (ddof=1)
over the seeds that completed; `summary.json` also holds each seed's value and a t-based 95%
confidence interval. Metrics are the top-level numbers of the runs' `metrics.json`, plus any
dotted path asked for (`--metric`, e.g. `fgsm.-1.accuracy`: key, list index, key).
""",
    )
    table = []
    for row in summary["rows"]:
        cells: dict[str, Any] = {k: _label(row["settings"][k]) for k in keys}
        cells["runs complete"] = f"{row['complete']}/{row['points']}"
        for name in summary["metrics"]:
            cells[name] = format_mean_std(row["metrics"][name]["values"])
        table.append(cells)
    rep.table("Results", table, caption="Mean ± std over seeds, per setting")
    for path, caption in figures:
        rep.figure("Results", path, caption)
    if summary["failed"]:
        rows = [
            {"point": f["point"], "seed": f["seed"], "error": _cell(f["error"] or "")}
            for f in summary["failed"]
        ]
        rep.table("Results", rows, caption="Failed points (see each point's run.log)")
    rep.text("Analysis", _analysis(summary, keys))
    return rep


def _cell(text: str, width: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _analysis(summary: dict[str, Any], keys: Sequence[str]) -> str:
    lines = []
    for name in summary["plotted"]:
        if name in summary["missing_metrics"]:
            lines.append(
                f"- **`{name}`** is not a number in any complete point's metrics.json; check "
                "the path (dotted keys, integer list indices)."
            )
            continue
        ranked = [r for r in summary["rows"] if r["metrics"][name]["mean"] is not None]
        if len(ranked) < 2 or not keys:
            continue
        ranked.sort(key=lambda r: r["metrics"][name]["mean"])

        def where(row: dict[str, Any], name: str = name) -> str:
            setting = ", ".join(f"{k}={_label(row['settings'][k])}" for k in keys)
            return f"{setting} ({format_mean_std(row['metrics'][name]['values'])})"

        lines.append(
            f"- **`{name}`** is highest at {where(ranked[-1])} and lowest at {where(ranked[0])}."
        )
    if summary["failed"]:
        lines.append(
            f"- **{len(summary['failed'])} point(s) failed** (table above); the cells average "
            "the seeds that completed. Rerunning the sweep with `--resume` retries them and "
            "reuses every complete point."
        )
    return "\n".join(lines) or "Nothing to compare: a single setting, or no complete point."


__all__ = [
    "Backend",
    "LocalBackend",
    "PointOutcome",
    "PointTask",
    "RayBackend",
    "SweepPlan",
    "SweepPoint",
    "SweepResult",
    "execute_point",
    "format_grid_item",
    "format_value",
    "make_backend",
    "metric_value",
    "parse_grid",
    "parse_grid_item",
    "plan_sweep",
    "point_name",
    "run_sweep",
    "write_sweep_report",
]
