"""Sweeps: grid strings, plans and names, the report's numbers, and tiny demo sweeps end to end."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import advlab.report.sweep as sweep_report
from advlab.errors import ConfigError, RunError
from advlab.overrides import format_grid_item, parse_grid, parse_grid_item
from advlab.report.sweep import metric_value, write_sweep_report
from advlab.runs import write_json
from advlab.sweep import plan_sweep, point_name, run_sweep

TINY = ("epochs=1", "n_attack=100", "width=4", "epsilons=[0.0,0.1]", "n_examples=2")


# -- grid strings ---------------------------------------------------------------------------


def test_grid_values_are_typed() -> None:
    grid = parse_grid(
        [
            "lr=0.1,0.01",
            "epochs=1, 2",
            "epsilons=[0.0,0.1],[0.3]",
            'dataset=mnist-sample,"a,b"',
            "flag=true,false",
            "extra=null,1e-05",
        ]
    )
    assert grid == {
        "lr": [0.1, 0.01],
        "epochs": [1, 2],
        "epsilons": [[0.0, 0.1], [0.3]],
        "dataset": ["mnist-sample", "a,b"],
        "flag": [True, False],
        "extra": [None, 1e-05],
    }
    assert [type(v) for v in grid["lr"] + grid["epochs"]] == [float, float, int, int]
    assert list(grid) == ["lr", "epochs", "epsilons", "dataset", "flag", "extra"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("lr", "expected key=v1,v2"),
        ("=0.1", "expected key=v1,v2"),
        ("lr=", "empty value"),
        ("lr=0.1,,0.2", "empty value"),
        ("lr=0.1,", "empty value"),
        ("eps=[0.1,0.2", "unclosed bracket or quote"),
        ("eps=0.1]", "unbalanced ']'"),
        ("lr=0.1,0.1", "value 0.1 of 'lr' is given twice"),
        ("x={a", "unclosed bracket"),
    ],
)
def test_bad_grid_items(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_grid([item])


def test_grid_key_twice() -> None:
    with pytest.raises(ConfigError, match="'lr' is already swept"):
        parse_grid(["lr=0.1", "lr=0.2"])


@pytest.mark.parametrize(
    "value",
    [0.1, 1e-05, 3, -2.5, True, None, "mnist-sample", "1", "true", "a,b", "it's", [0.0, 0.1], []],
)
def test_format_round_trips(value: Any) -> None:
    assert parse_grid_item(format_grid_item("k", [value])) == ("k", [value])


# -- plans and names ------------------------------------------------------------------------


def test_plan_names_are_deterministic_and_unique() -> None:
    grid = {"lr": [0.05, 0.1], "epsilons": [[0.0, 0.1], [0.3]]}
    base = ("epochs=1", "width=4")
    plan = plan_sweep("demo", grid, seeds=2, base_overrides=base)
    again = plan_sweep("demo", grid, seeds=2, base_overrides=base)
    assert plan == again and plan.id.startswith("lr-epsilons-")
    names = [p.name for p in plan.points]
    assert len(set(names)) == len(names) == 8
    first = plan.points[0]
    assert first.settings == {"lr": 0.05, "epsilons": [0.0, 0.1]} and first.seed == 0
    assert first.name == point_name(first.settings, 0)
    assert first.name.startswith("lr-0.05_epsilons-0.0-0.1_seed-0_")
    assert first.overrides == (*base, "lr=0.05", "epsilons=[0.0,0.1]")
    assert [p.seed for p in plan.points[:2]] == [0, 1]
    # Any change to what runs gives another sweep folder.
    assert plan_sweep("demo", grid, seeds=3, base_overrides=base).id != plan.id
    assert plan_sweep("demo", grid, seeds=2).id != plan.id
    assert plan.folder(Path("runs")) == Path("runs") / "demo-sweep" / plan.id


@pytest.mark.parametrize(
    ("grid", "kwargs", "message"),
    [
        ({"lrr": [0.1]}, {}, r"sweep point lrr-0.1_seed-0_\w+: DemoConfig: Key 'lrr' not in"),
        ({"epochs": ["abc", 2]}, {}, "DemoConfig: .*'abc'"),
        ({"seed": [1, 2]}, {}, "seeds are swept by --seeds"),
        ({"lr": [0.1]}, {"base_overrides": ["lr=0.2"]}, "'lr' is both swept"),
        ({"lr": [0.1]}, {"base_overrides": ["seed=3"]}, "a sweep sets each point's seed"),
        ({"lr": [0.1]}, {"seeds": 0}, "--seeds: expected a positive number"),
        ({"lr": []}, {}, "'lr' has no values"),
    ],
)
def test_bad_plans_fail_before_anything_runs(
    tmp_path: Path, grid: dict[str, list[Any]], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_sweep("demo", grid, out=tmp_path, **kwargs)
    assert not (tmp_path / "demo-sweep").exists()


def test_metric_paths() -> None:
    metrics = {"acc": 0.9, "flag": True, "a.b": 2, "fgsm": [{"accuracy": 0.8}, {"accuracy": 0.1}]}
    assert metric_value(metrics, "acc") == 0.9
    assert metric_value(metrics, "a.b") == 2.0
    assert metric_value(metrics, "fgsm.-1.accuracy") == 0.1
    assert metric_value(metrics, "fgsm.0.accuracy") == 0.8
    for path in ("flag", "fgsm", "fgsm.2.accuracy", "fgsm.x", "nope", "acc.0"):
        assert metric_value(metrics, path) is None, path


# -- the report, from a sweep folder alone ------------------------------------------------


def _fake_sweep(folder: Path) -> dict[str, list[float]]:
    """A sweep folder over width x model with made-up metrics; one point failed."""
    grid = {"width": [8, 4], "model": ["small_cnn", "mlp"]}
    points, expected = [], {}
    for width in grid["width"]:
        for model in grid["model"]:
            values = []
            for seed in (0, 1, 2):
                name = point_name({"width": width, "model": model}, seed)
                failed = (width, model, seed) == (4, "mlp", 2)
                acc = 0.5 + width / 100 + (0.1 if model == "mlp" else 0) + seed / 1000
                if not failed:
                    run = f"points/{name}/x/run"
                    metrics = {"acc": acc, "n": 10, "rows": [{"a": 2 * acc}]}
                    write_json(folder / run / "metrics.json", metrics)
                    values.append(acc)
                points.append(
                    {
                        "name": name,
                        "settings": {"width": width, "model": model},
                        "seed": seed,
                        "status": "failed" if failed else "complete",
                        "metrics": None if failed else f"{run}/metrics.json",
                        "error": "ValueError: broken | on purpose" if failed else None,
                    }
                )
            expected[f"{width}/{model}"] = values
    write_json(
        folder / "sweep.json",
        {
            "experiment": "x",
            "id": "fake",
            "keys": list(grid),
            "grid": grid,
            "seeds": [0, 1, 2],
            "base_overrides": [],
            "device": "cpu",
            "points": points,
        },
    )
    return expected


def test_report_from_folder(tmp_path: Path) -> None:
    expected = _fake_sweep(tmp_path)
    html = write_sweep_report(tmp_path, metric=["rows.0.a", "nope.path"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metrics"] == ["acc", "n", "rows.0.a", "nope.path"]
    assert summary["plotted"] == ["rows.0.a", "nope.path"]
    assert summary["missing_metrics"] == ["nope.path"]
    rows = {f"{r['settings']['width']}/{r['settings']['model']}": r for r in summary["rows"]}
    assert list(rows) == ["8/small_cnn", "8/mlp", "4/small_cnn", "4/mlp"]
    for key, values in expected.items():
        acc = rows[key]["metrics"]["acc"]
        assert acc["values"] == pytest.approx(values)
        assert acc["mean"] == pytest.approx(np.mean(values))
        assert acc["std"] == pytest.approx(np.std(values, ddof=1))
        assert rows[key]["metrics"]["rows.0.a"]["mean"] == pytest.approx(2 * np.mean(values))
        assert rows[key]["metrics"]["nope.path"] == {
            "n": 0,
            "mean": None,
            "std": None,
            "ci95": [None, None],
            "seeds": [],
            "values": [],
        }
    assert rows["4/mlp"]["complete"] == 2 and rows["4/mlp"]["metrics"]["acc"]["seeds"] == [0, 1]
    assert [f["seed"] for f in summary["failed"]] == [2]
    assert summary["figures"] == ["figures/rows.0.a-vs-width.png", "figures/rows.0.a-vs-model.png"]
    md = (tmp_path / "report.md").read_text()
    assert "| width | model | runs complete | acc | n | rows.0.a | nope.path |" in md
    values = expected["4/mlp"]
    cell = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"
    assert f"| 4 | mlp | 2/3 | {cell} | 10.000 ± 0.000 |" in md
    assert "broken \\| on purpose" in md  # a pipe in an error cannot break the table
    assert "one line per setting of model" in md
    assert "`nope.path`** is not a number" in md
    assert "**`rows.0.a`** is highest at width=8, model=mlp" in md
    page = html.read_text()
    for fig in summary["figures"]:
        assert base64.b64encode((tmp_path / fig).read_bytes()).decode() in page
    assert 'src="figures/' not in page


def test_report_pools_many_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_sweep(tmp_path)
    monkeypatch.setattr(sweep_report, "MAX_LINES", 1)
    write_sweep_report(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["plotted"] == ["acc"]  # the default: top-level numbers that vary
    md = (tmp_path / "report.md").read_text()
    assert md.count("points of the other settings pooled") == 4  # 2 figures: alt text, caption


# -- backends -------------------------------------------------------------------------------


class InProcess:
    """The smallest backend: run every task here, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def map(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, on_lost: Any = None
    ) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            self.seen.append(item.name)
            yield i, fn(item)

    def describe(self) -> dict[str, Any]:
        return {"kind": "in-process"}


def test_backend_can_be_swapped(tmp_path: Path) -> None:
    backend = InProcess()
    grid = {"dataset": ["nope", "nope2"]}  # both fail at once, inside run_experiment
    result = run_sweep("demo", grid, seeds=1, base_overrides=TINY, out=tmp_path, backend=backend)
    assert backend.seen == [p.name for p in result.plan.points]
    assert [p.status for p in result.points] == ["failed", "failed"]
    saved = json.loads((result.path / "sweep.json").read_text())
    assert saved["backend"] == {"kind": "in-process"} and saved["status"] == "failed"
    assert "**2 point(s) failed**" in (result.path / "report.md").read_text()
    with pytest.raises(ConfigError, match="not both"):
        run_sweep("demo", grid, out=tmp_path / "b", backend=InProcess(), workers=2)


# -- tiny demo sweeps on the process pool --------------------------------------------------


def test_sweep_end_to_end_then_resume(tmp_path: Path) -> None:
    grid = parse_grid(["lr=0.05,0.1"])
    kwargs: dict[str, Any] = {"seeds": 2, "base_overrides": TINY, "out": tmp_path, "workers": 2}
    result = run_sweep("demo", grid, metric="fgsm.-1.accuracy", **kwargs)
    plan = plan_sweep("demo", grid, seeds=2, base_overrides=TINY)
    assert result.path == tmp_path / "demo-sweep" / plan.id
    names = [p.name for p in plan.points]
    assert [p.name for p in result.points] == names
    assert sorted(p.name for p in (result.path / "points").iterdir()) == sorted(names)
    assert [p.status for p in result.points] == ["complete"] * 4
    assert len(result.ran) == 4 and not result.failed

    saved = json.loads((result.path / "sweep.json").read_text())
    assert saved["status"] == "complete" and saved["keys"] == ["lr"]
    assert saved["backend"]["kind"] == "local" and saved["backend"]["workers"] == 2
    metrics: dict[str, dict[str, Any]] = {}
    for point, entry in zip(plan.points, saved["points"], strict=True):
        assert entry["name"] == point.name and entry["status"] == "complete"
        run = result.path / entry["run"]
        assert run.parent.parent == result.path / "points" / point.name
        config = json.loads((run / "config.json").read_text())["config"]
        assert config["seed"] == point.seed and config["lr"] == point.settings["lr"]
        assert config["epochs"] == 1 and config["width"] == 4
        metrics[point.name] = json.loads((result.path / entry["metrics"]).read_text())

    # The table: one row per lr, mean ± sample std over the two seeds, recomputed here.
    rows = result.summary["rows"]
    assert [r["settings"] for r in rows] == [{"lr": 0.05}, {"lr": 0.1}]
    md = (result.path / "report.md").read_text()
    for row in rows:
        group = [p.name for p in plan.points if p.settings == row["settings"]]
        for name, pick in (
            ("clean_accuracy", lambda m: m["clean_accuracy"]),
            ("fgsm.-1.accuracy", lambda m: m["fgsm"][-1]["accuracy"]),
        ):
            values = [pick(metrics[n]) for n in group]
            cell = row["metrics"][name]
            assert cell["mean"] == pytest.approx(np.mean(values))
            assert cell["std"] == pytest.approx(np.std(values, ddof=1))
            assert f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" in md
    figure = result.path / "figures" / "fgsm.-1.accuracy-vs-lr.png"
    assert result.summary["figures"] == ["figures/fgsm.-1.accuracy-vs-lr.png"]
    page = result.report.read_text()
    assert base64.b64encode(figure.read_bytes()).decode() in page

    # The same sweep again without resume is refused; with resume, a deleted point reruns
    # alone and reproduces its metrics to the byte.
    with pytest.raises(RunError, match="resume it"):
        run_sweep("demo", grid, **kwargs)
    victim = plan.points[1]
    before = (result.path / saved["points"][1]["metrics"]).read_bytes()
    mtimes = {e["name"]: (result.path / e["metrics"]).stat().st_mtime_ns for e in saved["points"]}
    shutil.rmtree(result.path / "points" / victim.name)
    again = run_sweep("demo", grid, resume=True, metric="fgsm.-1.accuracy", **kwargs)
    assert [p.name for p in again.ran] == [victim.name]
    assert all(p.reused for p in again.points if p.name != victim.name)
    resaved = json.loads((again.path / "sweep.json").read_text())
    for entry in resaved["points"]:
        if entry["name"] != victim.name:
            assert (again.path / entry["metrics"]).stat().st_mtime_ns == mtimes[entry["name"]]
        else:
            assert (again.path / entry["metrics"]).read_bytes() == before
    assert again.summary["rows"] == result.summary["rows"]


def test_failed_point_does_not_stop_the_others(tmp_path: Path) -> None:
    grid = parse_grid(["dataset=mnist-sample,nope"])
    kwargs: dict[str, Any] = {"seeds": 1, "base_overrides": TINY, "out": tmp_path, "workers": 2}
    result = run_sweep("demo", grid, **kwargs)
    ok, bad = result.points
    assert ok.status == "complete" and ok.error is None
    assert bad.status == "failed" and "RegistryError: unknown dataset 'nope'" in str(bad.error)
    assert bad.run is not None
    assert json.loads((bad.run / "status.json").read_text())["status"] == "failed"
    saved = json.loads((result.path / "sweep.json").read_text())
    assert saved["status"] == "failed" and saved["error"] == "1 of 2 points failed"
    assert saved["points"][1]["metrics"] is None
    assert [f["point"] for f in result.summary["failed"]] == [bad.name]
    row = result.summary["rows"][1]
    assert row["complete"] == 0 and row["metrics"]["clean_accuracy"]["mean"] is None
    md = (result.path / "report.md").read_text()
    assert "Failed points" in md and "unknown dataset" in md and "| nope | 0/1 | n/a |" in md
    # Resume retries the failed point (it fails again) and reuses the complete one.
    again = run_sweep("demo", grid, resume=True, **kwargs)
    assert [p.name for p in again.ran] == [bad.name] and again.points[0].reused
