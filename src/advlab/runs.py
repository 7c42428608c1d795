"""A run folder: ``runs/<experiment>/<timestamp>/`` with config, env, metrics, figures, report.

Files are written atomically (temp file, then rename). ``status.json`` says ``running``,
``complete``, ``failed`` or ``interrupted``; a failed run keeps its log and says why. A run
folder is owned by one live process at a time (an OS lock on ``.lock``, which the kernel drops
when the process dies): a second writer is refused, and a ``running`` folder whose owner is
gone reads as ``interrupted``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from advlab.errors import RunError
from advlab.fileio import write_atomic

try:  # POSIX; elsewhere run folders are not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

RUNS_ROOT = Path("runs")
LOCK_FILE = ".lock"
NONFINITE_FILE = "nonfinite.json"
"""Beside metrics.json: where its nulls stand for NaN or an infinity (JSON has neither)."""
HEADLINE_KEYS = (
    "test_accuracy", "held_out_accuracy", "accuracy", "clean_accuracy", "success_rate",
    "robust_accuracy",
)  # fmt: skip
"""Metrics `headline` looks for, in this order (top level first, then one level down)."""
_PACKAGES = ("advlab", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "matplotlib")


def write_json(path: Path, obj: Any) -> Path:
    return write_atomic(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj


def environment(device: str) -> dict[str, Any]:
    """Versions, device and git sha, for env.json."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "device": device,
        "git_sha": sha or None,
        "cpu_count": os.cpu_count(),
    }
    import torch

    env["torch_threads"] = torch.get_num_threads()
    if device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env


class Run:
    """One run's folder.

    Args:
        path: The run folder (created if missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.figures = self.path / "figures"
        self.checkpoints = self.path / "checkpoints"
        self._lock: int | None = None  # the open, locked .lock while this process owns it

    # -- ownership ---------------------------------------------------------------------------
    def acquire(self) -> None:
        """Own this folder until `release` or the end of this process (an OS lock that the
        kernel drops when the process dies, however it dies); ``.lock`` records the PID.

        Raises:
            RunError: another live process owns the folder.
        """
        if fcntl is None or self._lock is not None:
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _pid_in(fd)
            os.close(fd)
            raise RunError(
                f"{self.path}: in use by process {owner} (a live advlab run writes there); "
                "wait for it to end or stop it, then resume"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock = fd

    def release(self) -> None:
        """Give up ownership (the lock file stays; the next owner overwrites it)."""
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor drops the lock
            self._lock = None

    def owner(self) -> int | None:
        """The PID of the live process that owns this folder, None if no process does."""
        if self._lock is not None:
            return os.getpid()
        path = self.path / LOCK_FILE
        if fcntl is None or not path.is_file():
            return None
        fd = os.open(path, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _pid_in(fd)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    @classmethod
    def create(cls, experiment: str, root: Path | None = None) -> Run:
        """A new, empty run folder ``<root>/<experiment>/<timestamp>[-N]``."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(root or RUNS_ROOT) / experiment
        for n in range(1, 10_000):
            path = base / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                base.mkdir(parents=True, exist_ok=True)
                path.mkdir()  # atomic: two runs started in the same second get two folders
            except FileExistsError:
                if not base.is_dir():
                    raise RunError(f"{base}: expected a folder for runs, found a file") from None
                continue
            except OSError as exc:
                raise RunError(
                    f"{path}: cannot create a run folder there ({exc.strerror}); expected a "
                    "writable --out folder"
                ) from None
            return cls(path)
        raise RunError(f"{base}: cannot create a new run folder for {stamp}")

    @classmethod
    def latest(cls, experiment: str, root: Path | None = None) -> Run:
        """The newest run of `experiment` under `root`."""
        base = Path(root or RUNS_ROOT) / experiment
        runs = sorted(
            (p for p in base.glob("*") if (p / "status.json").is_file()),
            key=lambda p: (p.name[:15], int(p.name[16:] or 1) if p.name[16:].isdigit() else 0),
        )
        if not runs:
            raise RunError(f"{base}: no run of {experiment} there")
        return cls(runs[-1])

    # -- files -------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        return self.path / name

    def figure(self, name: str) -> Path:
        """Path for a figure (PNG) under figures/."""
        self.figures.mkdir(exist_ok=True)
        return self.figures / name

    def save_json(self, name: str, obj: Any) -> Path:
        return write_json(self.path / name, obj)

    def load_json(self, name: str) -> Any:
        path = self.path / name
        if not path.is_file():
            raise RunError(f"{path}: missing; is {self.path} a complete run folder?")
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunError(
                f"{path}: expected JSON, found a damaged or empty file ({exc})"
            ) from None

    def save_metrics(self, metrics: Any) -> Path:
        """Write metrics.json as strict JSON: a NaN or infinite number is written as null and
        listed, with its value, in nonfinite.json (`load_metrics` puts it back); a warning says
        how many there were."""
        clean, marks = split_nonfinite(_jsonable(metrics))
        (self.path / NONFINITE_FILE).unlink(missing_ok=True)
        if marks:
            log.warning(
                "%s: %d metric value(s) are NaN or infinite (e.g. %s = %s), written as null; "
                "%s lists them",
                self.path,
                len(marks),
                *next(iter(marks.items())),
                NONFINITE_FILE,
            )
            write_atomic(self.path / NONFINITE_FILE, json.dumps(marks, indent=2) + "\n")
        return write_atomic(
            self.path / "metrics.json",
            json.dumps(clean, indent=2, sort_keys=True, allow_nan=False) + "\n",
        )

    def load_metrics(self) -> Any:
        """metrics.json with the NaN and infinite values nonfinite.json records put back."""
        metrics = self.load_json("metrics.json")
        if (self.path / NONFINITE_FILE).is_file():
            metrics = restore_nonfinite(metrics, self.load_json(NONFINITE_FILE))
        return metrics

    def status(self) -> str:
        """``complete``, ``failed``, ``interrupted``, ``running`` (its owner is alive) or
        ``unknown`` (no readable status.json). A run left ``running`` by a process that no
        longer exists reads as ``interrupted``."""
        try:
            status = str(self.load_json("status.json")["status"])
        except (RunError, KeyError, TypeError, json.JSONDecodeError):
            return "unknown"
        if status == "running" and self.owner() is None:
            return "interrupted"
        return status

    def set_status(self, status: str, **extra: Any) -> None:
        self.save_json(
            "status.json", {"status": status, "time": dt.datetime.now().isoformat(), **extra}
        )

    def attach_log(self) -> logging.FileHandler:
        """Send advlab's log records to ``run.log`` in this folder; returns the handler."""
        handler = logging.FileHandler(self.path / "run.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        logger = logging.getLogger("advlab")
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        return handler


def split_nonfinite(obj: Any, path: str = "") -> tuple[Any, dict[str, str]]:
    """`obj` (parsed JSON) with every NaN or infinite float replaced by None, and where they
    stood: ``{"/key/0/key": "nan" | "inf" | "-inf"}``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None, {path or "/": repr(obj)}
    marks: dict[str, str] = {}
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out[key], found = split_nonfinite(value, f"{path}/{key}")
            marks.update(found)
        return out, marks
    if isinstance(obj, list):
        items = []
        for i, value in enumerate(obj):
            item, found = split_nonfinite(value, f"{path}/{i}")
            items.append(item)
            marks.update(found)
        return items, marks
    return obj, marks


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def restore_nonfinite(obj: Any, marks: Mapping[str, str]) -> Any:
    """Undo `split_nonfinite`: put each recorded value back at its path (one shared NaN
    object, as `json.loads` gives, so that equal metrics compare equal)."""
    for where, mark in marks.items():
        value = _NONFINITE.get(mark, float(mark))
        if where == "/":
            return value
        *parents, last = where.strip("/").split("/")
        node = obj
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return obj


def _pid_in(fd: int) -> int | None:
    """The PID written in an open lock file, None if it holds none."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """One line of `list_runs`: where, which experiment, its status, when, its headline."""

    path: Path
    experiment: str
    status: str
    started: str
    headline: str


def headline(metrics: Any) -> str:
    """The first of `HEADLINE_KEYS` found in `metrics` (top level, then one level down), as
    ``key 0.1234``; empty when none is there."""
    if not isinstance(metrics, Mapping):
        return ""
    levels = [metrics, *(v for v in metrics.values() if isinstance(v, Mapping))]
    for key in HEADLINE_KEYS:
        for level in levels:
            value = level.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return f"{key} {value:.4g}"
    return ""


def list_runs(root: Path = RUNS_ROOT, experiment: str | None = None) -> list[RunInfo]:
    """Every run folder under `root` (``<root>/<experiment>/<timestamp>``), oldest first, with
    its live status (see `Run.status`)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.glob(f"{experiment or '*'}/*/status.json")):
        run = Run(folder.parent)  # exists: status.json is in it
        try:
            metrics = json.loads((run.path / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError):
            metrics = None
        name = run.path.name
        started = f"{name[:4]}-{name[4:6]}-{name[6:8]} {name[9:11]}:{name[11:13]}:{name[13:15]}"
        out.append(
            RunInfo(run.path, run.path.parent.name, run.status(), started, headline(metrics))
        )
    return out
