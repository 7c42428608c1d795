"""Run folders under faults: one live owner per folder (an OS lock), a dead owner's run reads
as interrupted, SIGTERM ends a run as Ctrl-C does, a named folder resumes, `advlab runs`
lists them. The runs are a tiny experiment that waits for a file, in a subprocess killed by
its PID."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from advlab.cli import app
from advlab.errors import RunError
from advlab.experiments import EXPERIMENTS, run_experiment
from advlab.runs import Run, headline, list_runs

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks and signals")

SLEEPER = """
import sys, time
from dataclasses import dataclass
from pathlib import Path

from advlab.experiments import EXPERIMENTS
from advlab.experiments.base import register_experiment, run_experiment
from advlab.report import Report


@dataclass(frozen=True)
class SleeperConfig:
    seconds: float = 120.0
    seed: int = 0


def execute(cfg, ctx):
    (ctx.run.path / "started").touch()
    end = time.monotonic() + cfg.seconds
    while not (ctx.run.path / "go").exists():
        if time.monotonic() > end:
            raise TimeoutError("no go file")
        time.sleep(0.05)
    return {"stage": {"accuracy": 0.5}}


def report(cfg, metrics, run):
    return Report("sleeper", run.path)


if "sleeper-test" not in EXPERIMENTS:
    register_experiment("sleeper-test", "waits for a file", config=SleeperConfig,
                        execute=execute, report=report)

if __name__ == "__main__":
    run_experiment("sleeper-test", out=Path(sys.argv[1]))
"""


@pytest.fixture
def sleeper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sleeper experiment's script, registered in this process for the test only."""
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    monkeypatch.setattr(EXPERIMENTS, "_items", dict(EXPERIMENTS._items))
    monkeypatch.setattr(EXPERIMENTS, "_help", dict(EXPERIMENTS._help))
    spec = importlib.util.spec_from_file_location("sleeper_test_module", script)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return script


def _start(script: Path, out: Path) -> tuple[subprocess.Popen[bytes], Path]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        started = list(out.glob("sleeper-test/*/started"))
        if started:
            return proc, started[0].parent
        if proc.poll() is not None:
            raise AssertionError(f"the sleeper exited early with {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the sleeper did not start within 120 s")


def test_a_live_run_owns_its_folder_and_a_dead_one_reads_interrupted(
    tmp_path: Path, sleeper: Path
) -> None:
    out = tmp_path / "runs"
    proc, folder = _start(sleeper, out)
    try:
        run = Run(folder)
        assert run.status() == "running" and run.owner() == proc.pid
        with pytest.raises(RunError, match=f"in use by process {proc.pid}"):
            run.acquire()
        with pytest.raises(RunError, match=f"in use by process {proc.pid}"):
            run_experiment(str(folder), resume=True)
        assert json.loads((folder / "status.json").read_text())["status"] == "running"
        assert [r.status for r in list_runs(out)] == ["running"]
    finally:
        proc.kill()
        proc.wait(30)
    assert json.loads((folder / "status.json").read_text())["status"] == "running"  # as left
    assert Run(folder).status() == "interrupted" and Run(folder).owner() is None
    assert [(r.experiment, r.status) for r in list_runs(out)] == [("sleeper-test", "interrupted")]
    (folder / "go").touch()
    resumed = run_experiment(str(folder), resume=True)  # by its folder, not "the newest"
    assert resumed.path == folder and resumed.status() == "complete"
    assert json.loads((folder / "metrics.json").read_text()) == {"stage": {"accuracy": 0.5}}
    listed = CliRunner().invoke(app, ["runs", "--out", str(out)])
    assert listed.exit_code == 0, listed.output
    assert str(folder) in listed.output and "complete" in listed.output
    assert "accuracy 0.5" in listed.output


def test_sigterm_ends_a_run_interrupted_and_resumable(tmp_path: Path, sleeper: Path) -> None:
    out = tmp_path / "runs"
    proc, folder = _start(sleeper, out)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) != 0
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "interrupted" and "SIGTERM" in status["error"]
    assert "advlab run --resume" in (folder / "run.log").read_text()
    with pytest.raises(RunError, match="not a run folder"):
        run_experiment(str(tmp_path / "nowhere" / "x"), resume=True)
    (folder / "go").touch()
    assert run_experiment("sleeper-test", resume=True, out=out).path == folder  # the newest
    with pytest.raises(RunError, match="is complete; nothing to resume"):
        run_experiment(str(folder), resume=True)


def test_headline_picks_the_first_known_metric() -> None:
    assert headline({"clean_accuracy": 0.91234, "success_rate": 0.4}) == "clean_accuracy 0.9123"
    assert headline({"untargeted": {"success_rate": 0.25}, "n": 3}) == "success_rate 0.25"
    assert headline({"n": 3}) == "" and headline(None) == ""


def _marked(marker: str, skip: int) -> list[int]:
    """PIDs of live, non-zombie processes started with `marker` in their environment."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == skip:
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in environ and state != b"Z":
            found.append(int(entry))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_pool_workers_and_forkserver_die_with_a_killed_caller(tmp_path: Path) -> None:
    (tmp_path / "slow_task.py").write_text("import time\n\ndef task(i):\n    time.sleep(600)\n")
    marker = f"advlab-test-{os.getpid()}-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "ADVLAB_TEST_MARKER": marker,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }
    code = (
        "import slow_task, advlab.backends as b; "
        "list(b.LocalBackend(2).map(slow_task.task, [0, 1]))"
    )
    caller = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while len(_marked(marker, caller.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)  # the forkserver, the resource tracker and two workers
        assert len(_marked(marker, caller.pid)) >= 4
    finally:
        caller.kill()
        caller.wait(30)
    deadline = time.monotonic() + 20
    while _marked(marker, caller.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _marked(marker, caller.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []


def test_metrics_json_is_strict_json_and_nonfinite_values_come_back(tmp_path: Path) -> None:
    run = Run(tmp_path / "r")
    metrics = {"a": float("nan"), "b": [1.0, float("inf"), {"c": -float("inf")}], "d": 0.5}
    run.save_metrics(metrics)
    text = (run.path / "metrics.json").read_text()
    assert json.loads(text) == {"a": None, "b": [1.0, None, {"c": None}], "d": 0.5}
    assert "NaN" not in text and "Infinity" not in text  # what strict parsers refuse
    assert json.loads((run.path / "nonfinite.json").read_text()) == {
        "/a": "nan",
        "/b/1": "inf",
        "/b/2/c": "-inf",
    }
    back = run.load_metrics()
    assert back["b"][1] == float("inf") and back["b"][2]["c"] == -float("inf")
    assert back["a"] != back["a"] and back["d"] == 0.5
    run.save_metrics({"d": 1.0})  # all finite: no stale list left behind
    assert not (run.path / "nonfinite.json").exists() and run.load_metrics() == {"d": 1.0}


def test_a_dying_worker_costs_a_retry_not_the_other_tasks(tmp_path: Path) -> None:
    from advlab.backends import LocalBackend
    from worker_tasks import task

    items = [("value", 1), ("die_once", str(tmp_path / "marker")), ("value", 3)]
    assert dict(LocalBackend(2).map(task, items)) == {0: 1, 1: "survived", 2: 3}
    lost = dict(
        LocalBackend(2, retries=1).map(
            task, [("die_always", None), ("value", 7)], on_lost=lambda i, error: f"lost: {error}"
        )
    )
    assert lost[1] == 7
    assert (
        lost[0]
        == "lost: task 0: its worker process died 2 time(s) (killed, out of memory or crashed)"
    )


def test_a_pool_maps_nothing_to_nothing() -> None:
    from advlab.backends import LocalBackend
    from worker_tasks import task

    assert list(LocalBackend(2).map(task, [])) == []
