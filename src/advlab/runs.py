"""A run folder: ``runs/<experiment>/<timestamp>/`` with config, env, metrics, figures, report.

Files are written atomically (temp file, then rename). ``status.json`` says ``running``,
``complete`` or ``failed``; a failed run keeps its log and says why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
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

RUNS_ROOT = Path("runs")
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

    @classmethod
    def create(cls, experiment: str, root: Path | None = None) -> Run:
        """A new, empty run folder ``<root>/<experiment>/<timestamp>[-N]``."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(root or RUNS_ROOT) / experiment
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            path = base / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                path.mkdir()  # atomic: two runs started in the same second get two folders
            except FileExistsError:
                continue
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
        return json.loads(path.read_text())

    def status(self) -> str:
        try:
            return str(self.load_json("status.json")["status"])
        except (RunError, KeyError, json.JSONDecodeError):
            return "unknown"

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
