"""Experiments: a config dataclass, a function that runs it, and one that writes its report.

`run_experiment` owns everything around them: the run folder, config and env files, seeding,
metrics, timing, status and the report files. An experiment module only wires library pieces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advlab.backends import Backend
from advlab.errors import ConfigError, Interrupted, RunError
from advlab.fileio import write_atomic
from advlab.overrides import build_config, format_value
from advlab.registry import Registry
from advlab.report.render import Report, render_html
from advlab.runs import Run, environment
from advlab.validation import check_int

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from advlab.evaluation import Evaluation

log = logging.getLogger(__name__)

MAX_SEED = 2**32 - 1  # numpy's and torch's generators take seeds in [0, 2**32)


@dataclass
class Context:
    """What an experiment's `execute` gets besides its config."""

    run: Run
    device: str
    progress: bool
    timing: dict[str, float] = dataclasses.field(default_factory=dict)
    shards: int = 1  # attack evaluations: tasks to cut their fixed chunks into (`advlab.shards`)
    backend: Backend | None = None  # where shards run; None: a local process pool

    def timed(self, name: str) -> _Timer:
        """``with ctx.timed("train"):`` records wall seconds in timing.json."""
        return _Timer(self.timing, name)

    def evaluate(
        self,
        evaluation: Evaluation,
        ids: Any,
        *,
        name: str,
        chunk: int,
        model: nn.Module | None = None,
    ) -> dict[str, dict[str, np.ndarray]]:
        """`advlab.evaluation.evaluate` in this run: its chunks in ``chunks/<name>`` of the run
        folder (kept for ``--resume``), cut into the run's shards on its backend."""
        from advlab.evaluation import evaluate

        folder = self.run.path / "chunks" / name
        return evaluate(
            evaluation,
            ids,
            folder=folder,
            chunk=chunk,
            shards=self.shards,
            backend=self.backend,
            model=model,
            desc=name,
        )


class _Timer:
    def __init__(self, sink: dict[str, float], name: str) -> None:
        self.sink, self.name = sink, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.sink[self.name] = self.sink.get(self.name, 0.0) + time.perf_counter() - self.start


@dataclass(frozen=True)
class Experiment:
    """A registered experiment (`register_experiment` makes one).

    Args:
        name: Registry name (``advlab run NAME``).
        summary: One line for ``advlab list``, the registry's help for `name`.
        config: Config dataclass; its defaults reproduce the lab's setting; has a ``seed``.
        execute: ``(config, context) -> metrics``; saves figures/artifacts in the run folder.
        report: ``(config, metrics, run) -> Report``; must work from the run folder alone.
    """

    name: str
    summary: str
    config: type[Any]
    execute: Callable[[Any, Context], dict[str, Any]]
    report: Callable[[Any, dict[str, Any], Run], Report]


EXPERIMENTS: Registry[Experiment] = Registry("experiment", describe=lambda exp: exp.summary)


def register_experiment(
    name: str,
    summary: str,
    *,
    config: type[Any],
    execute: Callable[[Any, Context], dict[str, Any]],
    report: Callable[[Any, dict[str, Any], Run], Report],
) -> Experiment:
    """Register an experiment as `name` (``advlab run NAME``), once: `summary` is its line in
    ``advlab list``; the other arguments are `Experiment`'s.

    Raises:
        RegistryError: `name` is already registered.
    """
    return EXPERIMENTS.add(name, Experiment(name, summary, config, execute, report))


def write_report(exp: Experiment, cfg: Any, metrics: dict[str, Any], run: Run) -> Path:
    """Build the report from the run folder and write report.md and report.html."""
    report = exp.report(cfg, metrics, run)
    md = report.markdown()
    write_atomic(run.file("report.md"), md)
    write_atomic(run.file("report.html"), render_html(md, run.path, title=report.title))
    return run.file("report.html")


def run_experiment(
    name: str,
    overrides: Sequence[str] = (),
    *,
    seed: int | None = None,
    device: str = "cpu",
    out: Path | None = None,
    resume: bool = False,
    progress: bool = False,
    shards: int = 1,
    backend: Backend | None = None,
) -> Run:
    """Run experiment `name` and return its run folder (see `advlab run --help`).

    With `resume`, `name` is a run folder to continue, or an experiment whose newest run is
    continued; the folder must not be complete or owned by a live process. The process owns the
    run folder while it works; SIGTERM and SIGHUP end the run ``interrupted``, as Ctrl-C does.

    `shards` > 1 runs the attack evaluations of the experiments that have them
    (onepixel-cifar, apr-cifar, robust-mnist, robust-cifar) as that many tasks on `backend`
    (an `advlab.backends.Backend`; None: a local process pool); their results are the same as
    with one shard. Other experiments ignore it.
    """
    from advlab.shards import shard_count

    shard_count(shards)
    from advlab.seeding import seed_everything

    if resume:
        if overrides or seed is not None:
            raise ConfigError(
                "--resume continues a run with its saved config; drop --set/--seed, or start "
                "a new run without --resume"
            )
        run = _run_to_resume(name, out)
        run.acquire()
        try:
            if run.status() == "complete":
                raise RunError(f"{run.path}: this run is complete; nothing to resume")
            saved = run.load_json("config.json")
            exp = EXPERIMENTS.get(saved["experiment"])
            cfg = build_config(exp.config, (), **saved["config"])
            device = saved.get("device", device)
            _check_device(device)
        except BaseException:
            run.release()
            raise
        log.info("resuming %s in %s", exp.name, run.path)
    else:
        exp = EXPERIMENTS.get(name)
        cfg = build_config(exp.config, overrides, seed=seed)
        check_int("--seed", cfg.seed, minimum=0, maximum=MAX_SEED)
        _check_device(device)
        run = Run.create(name, out)
        run.acquire()
    handler = run.attach_log()
    try:
        with _signals_interrupt():
            run.save_json("config.json", {"experiment": exp.name, "device": device, "config": cfg})
            run.save_json("env.json", environment(device))
            run.set_status("running", pid=os.getpid())
            seed_everything(cfg.seed)
            ctx = Context(run=run, device=device, progress=progress, shards=shards, backend=backend)
            start = time.perf_counter()
            metrics = exp.execute(cfg, ctx)
            ctx.timing["total"] = time.perf_counter() - start
            run.save_metrics(metrics)
            run.save_json("timing.json", ctx.timing)
            write_report(exp, cfg, metrics, run)
            run.set_status("complete")
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            run.set_status("interrupted", error=f"{type(exc).__name__}: {exc}".rstrip(": "))
            log.error(
                "run %s interrupted; continue it with advlab run --resume %s", run.path, run.path
            )
        else:
            run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            log.error("run %s failed: %s: %s", run.path, type(exc).__name__, exc)
        handler.flush()
        with run.file("run.log").open("a", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        raise
    finally:
        logging.getLogger("advlab").removeHandler(handler)
        handler.close()
        run.release()
    return run


def _run_to_resume(name: str, out: Path | None) -> Run:
    """The run folder `name` (a path holding a config.json), else the newest run of the
    experiment `name` under `out`."""
    folder = Path(name)
    if (folder / "config.json").is_file():
        return Run(folder)
    if name not in EXPERIMENTS and (folder.is_dir() or os.sep in name):
        raise RunError(f"{name}: not a run folder (no config.json) and not an experiment name")
    EXPERIMENTS.get(name)  # an unknown name fails here, listing the known ones
    return Run.latest(name, out)


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """While a run works, SIGTERM and SIGHUP stop it as Ctrl-C does (`Interrupted`, a
    KeyboardInterrupt), so it ends ``interrupted`` and resumable. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signal.Signals(signum).name)

    wanted = [getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    previous = {s: signal.signal(s, stop) for s in wanted}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def rebuild_report(run_dir: Path) -> Path:
    """Rewrite report.md/html of a finished run from its config.json and metrics.json."""
    run = Run(Path(run_dir)) if Path(run_dir).is_dir() else None
    if run is None:
        raise RunError(f"{run_dir}: not a run folder")
    saved = run.load_json("config.json")
    exp = EXPERIMENTS.get(saved["experiment"])
    cfg = build_config(exp.config, (), **saved["config"])
    return write_report(exp, cfg, run.load_metrics(), run)


def _check_device(device: str) -> None:
    import torch

    if device == "cpu":
        return
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine")
        return
    raise ConfigError(f"--device {device!r}: expected cpu or cuda[:N]")


def rerun_command(name: str, cfg: Any) -> str:
    """The command that reruns experiment `name` with config `cfg`: ``advlab run NAME``, a
    ``--set`` for every field (dotted for nested configs) that differs from the config's
    default, and ``--seed``; values written as ``--set`` reads them back, quoted for the shell
    where they hold brackets, commas or spaces."""
    import shlex

    def flat(obj: Any, prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                out.update(flat(value, f"{prefix}{f.name}."))
            else:
                out[f"{prefix}{f.name}"] = value
        return out

    given, default = flat(cfg), flat(type(cfg)())
    parts = [f"advlab run {name}"]
    for key, value in given.items():
        if key != "seed" and value != default.get(key):
            parts.append("--set " + shlex.quote(f"{key}={format_value(value)}"))
    if "seed" in given:
        parts.append(f"--seed {given['seed']}")
    return " ".join(parts)
