"""The Ray backend of `advlab sweep`: a real local cluster on loopback, with a worker killed.

A head node without CPUs and two worker nodes of one CPU each run a tiny demo sweep; a thread
kills the worker process of the first point that has started its run (Ray names the process
after the task it runs). Every point must still be recorded exactly once, and its metrics must
equal those of the same sweep on the local process pool, to the byte.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from advlab.backends import LocalBackend, RayBackend, make_backend
from advlab.data import load_dataset
from advlab.errors import ConfigError
from advlab.experiments import run_experiment
from advlab.overrides import parse_grid
from advlab.runs import Run
from advlab.sweep import run_sweep
from advlab.train import TrainConfig, fit
from advlab.train.store import ModelRecipe, build, save_model
from conftest import require_data

if os.environ.get("CI") != "true":  # CI installs the dev extra, which has Ray: never skip there
    pytest.importorskip("ray", reason="needs the cluster extra: pip install 'advlab[cluster]'")

TINY = ("epochs=1", "n_attack=100", "width=4", "epsilons=[0.0,0.1]", "n_examples=2")
MB = 2**20


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": 80 * MB, "include_dashboard": False},
    )
    for _ in range(2):
        c.add_node(num_cpus=1, object_store_memory=80 * MB)
    c.wait_for_nodes()
    try:
        yield c.address
    finally:
        c.shutdown()


def _point_workers() -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if cmd.startswith("ray::_ray_call"):
            found.append(proc)
    return found


def _kill_first_running(root: Path, killed: list[int], stop: threading.Event) -> None:
    """Kill one task's worker once some point's run folder says `running`."""
    while not stop.is_set():
        started = [
            p
            for p in root.glob("demo-sweep/*/points/*/demo/*/status.json")
            if '"running"' in p.read_text()
        ]
        workers = _point_workers()
        if started and workers:
            workers[0].send_signal(signal.SIGKILL)
            killed.append(workers[0].pid)
            return
        time.sleep(0.05)


def _metrics(result_path: Path) -> dict[str, bytes]:
    saved = json.loads((result_path / "sweep.json").read_text())
    return {e["name"]: (result_path / e["metrics"]).read_bytes() for e in saved["points"]}


def test_ray_sweep_survives_a_killed_worker_and_matches_local(tmp_path: Path, cluster: str) -> None:
    grid = parse_grid(["lr=0.05,0.1"])
    kwargs = {"seeds": 1, "base_overrides": TINY, "metric": "fgsm.-1.accuracy"}
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_running, args=(tmp_path / "ray", killed, stop))
    killer.start()
    try:
        on_ray = run_sweep(
            "demo", grid, out=tmp_path / "ray", backend=RayBackend(cluster, retries=2), **kwargs
        )
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1, "the test never caught a point's worker to kill"
    assert [p.status for p in on_ray.points] == ["complete", "complete"]
    saved = json.loads((on_ray.path / "sweep.json").read_text())
    assert saved["backend"]["kind"] == "ray" and saved["status"] == "complete"
    assert sorted(e["name"] for e in saved["points"]) == sorted(p.name for p in on_ray.plan.points)
    for entry in saved["points"]:  # exactly one finished run per point, the one recorded
        runs = [
            r
            for r in (on_ray.path / "points" / entry["name"] / "demo").iterdir()
            if (r / "status.json").is_file()
        ]
        assert len(runs) == 1 and on_ray.path / entry["run"] == runs[0]
        assert json.loads((runs[0] / "status.json").read_text())["status"] == "complete"

    local = run_sweep(
        "demo", grid, out=tmp_path / "local", backend=LocalBackend(2, threads=1), **kwargs
    )
    assert local.plan.id == on_ray.plan.id
    assert _metrics(local.path) == _metrics(on_ray.path)
    assert local.summary["rows"] == on_ray.summary["rows"]


def test_backend_choice_from_the_command_line() -> None:
    assert make_backend("local") is None
    assert isinstance(make_backend("local", workers=3), LocalBackend)
    ray_backend = make_backend("ray", address="10.0.0.1:6379", max_parallel=4, gpus=1)
    assert isinstance(ray_backend, RayBackend)
    assert ray_backend.describe() == {
        "kind": "ray",
        "address": "10.0.0.1:6379",
        "max_parallel": 4,
        "cpus_per_task": 1,
        "gpus_per_task": 1,
        "retries": 3,
    }
    with pytest.raises(ConfigError, match="--max-parallel belong to --backend ray"):
        make_backend("local", max_parallel=2)
    with pytest.raises(ConfigError, match="use --max-parallel"):
        make_backend("ray", workers=2)
    with pytest.raises(ConfigError, match="expected local or ray, found 'dask'"):
        make_backend("dask")
    with pytest.raises(ConfigError, match="--max-parallel: expected an int >= 1"):
        list(RayBackend(max_parallel=0).map(str, []))


def _kill_first_shard(root: Path, killed: list[int], stop: threading.Event) -> None:
    """Kill one shard's worker once a first chunk is written (its shard has more to do)."""
    while not stop.is_set():
        written = list(root.glob("onepixel-cifar/*/chunks/d1/chunk-*.npz"))
        workers = [
            p
            for p in psutil.process_iter(["cmdline"])
            if " ".join(p.info["cmdline"] or []).startswith("ray::_ray_call")
        ]
        if written and workers:
            workers[0].send_signal(signal.SIGKILL)
            killed.append(workers[0].pid)
            return
        time.sleep(0.02)


def _onepixel_results(run_path: Path) -> tuple[dict[str, object], dict[str, bytes]]:
    m = Run(run_path).load_metrics()
    for part in m["untargeted"].values():
        part.pop("seconds")
    with np.load(run_path / "onepixel.npz") as npz:
        return m, {k: npz[k].tobytes() for k in npz.files}


def test_ray_shards_survive_a_killed_worker_and_match_one_shard(
    tmp_path: Path, cluster: str
) -> None:
    require_data("cifar10")
    x, y = load_dataset("cifar10", "train").take(2000, seed=0).tensors()
    recipe = ModelRecipe("small_cnn", "cifar10", train=TrainConfig(epochs=3, lr=0.05, seed=0))
    torch.manual_seed(0)
    model = build(recipe, (3, 32, 32), 10, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
    fit(model, (x, y), recipe.train, progress=False)
    ckpt = save_model(tmp_path / "tiny.pt", model.eval(), recipe, (3, 32, 32), 10, {})
    settings = [f"checkpoint={ckpt}", "n_images=40", "pixels=[1]", "population=100",
                "max_generations=30", "targeted_per_class=0", "chunk=2"]  # fmt: skip
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_first_shard, args=(tmp_path / "ray", killed, stop))
    killer.start()
    try:
        sharded = run_experiment(
            "onepixel-cifar",
            settings,
            out=tmp_path / "ray",
            shards=2,
            backend=RayBackend(cluster, retries=2),
        )
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1, "the test never caught a shard's worker to kill"
    # One shard, in this process, with this process's threads: the same numbers, to the byte.
    one = run_experiment("onepixel-cifar", settings, out=tmp_path / "one")
    assert _onepixel_results(sharded.path) == _onepixel_results(one.path)
