"""Tasks for process-pool tests: importable by pool workers (the tests folder is on their
path), each item ``(kind, argument)``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def task(item: tuple[str, object]) -> object:
    kind, arg = item
    if kind == "value":
        time.sleep(0.5)
        return arg
    if kind == "die_once":  # SIGKILL its own worker the first time, succeed when retried
        marker = Path(str(arg))
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return "survived"
    if kind == "die_always":
        os.kill(os.getpid(), signal.SIGKILL)
    raise ValueError(kind)
