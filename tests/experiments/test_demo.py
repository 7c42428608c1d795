"""The demo experiment end to end, at tiny size: files, numbers, determinism, failure, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advlab.errors import ConfigError, RegistryError
from advlab.experiments import EXPERIMENTS, build_config, rebuild_report, run_experiment
from advlab.runs import Run

TINY = ["epochs=1", "n_attack=200", "width=8", "epsilons=[0.0,0.1,0.3]", "n_examples=3"]


def test_demo_run_folder_and_numbers(tmp_path: Path) -> None:
    run = run_experiment("demo", TINY, seed=1, out=tmp_path)
    assert run.path.parent == tmp_path / "demo"
    figures = ["accuracy_vs_epsilon", "examples", "preprocessing", "covariance"]
    names = ["config.json", "env.json", "metrics.json", "timing.json", "report.md", "report.html"]
    for name in names + ["run.log"] + [f"figures/{f}.png" for f in figures]:
        assert (run.path / name).is_file(), name
    assert run.status() == "complete"
    config = json.loads((run.path / "config.json").read_text())
    assert config["config"]["seed"] == 1 and config["config"]["epochs"] == 1
    metrics = run.load_metrics()
    rows = metrics["fgsm"]
    assert [r["epsilon"] for r in rows] == [0.0, 0.1, 0.3]
    assert metrics["n_attacked"] == 200
    assert rows[0]["success_rate"] == pytest.approx(1 - rows[0]["accuracy"])
    assert rows[0]["accuracy"] > 0.7  # one epoch of a tiny CNN on 4,000 digits
    assert rows[2]["accuracy"] < rows[0]["accuracy"] - 0.2
    assert all(r["linf"] <= r["epsilon"] + 1e-6 for r in rows)
    cov = metrics["preprocessing"]["covariance"]
    zca, original = cov["ZCA-whitened"], cov["original"]
    assert zca["mean_abs_offdiag"] < original["mean_abs_offdiag"] / 2  # measured 0.35x
    assert cov["centred"] == pytest.approx(original)  # centring leaves the covariance alone
    assert metrics["preprocessing"]["ZCA-whitened_corr_with_input"] > 0.5
    report = (run.path / "report.md").read_text()
    assert f"{rows[2]['accuracy']:.3f} at eps = 0.3" in report
    assert report.count("](figures/") == 5


def test_same_seed_same_metrics(tmp_path: Path) -> None:
    a = run_experiment("demo", TINY, seed=3, out=tmp_path / "a")
    b = run_experiment("demo", TINY, seed=3, out=tmp_path / "b")
    assert (a.path / "metrics.json").read_bytes() == (b.path / "metrics.json").read_bytes()


def test_failed_run_is_marked(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="unknown dataset 'nope'"):
        run_experiment("demo", [*TINY, "dataset=nope"], out=tmp_path)
    (folder,) = (tmp_path / "demo").iterdir()
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "failed" and "unknown dataset" in status["error"]
    assert not (folder / "metrics.json").exists() and not (folder / "report.md").exists()
    assert "Traceback" in (folder / "run.log").read_text()


def test_resume_after_interruption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import advlab.experiments.demo as demo

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    real_fgsm = demo.FGSM
    monkeypatch.setattr(demo, "FGSM", interrupted)  # dies after training, before the attack
    with pytest.raises(KeyboardInterrupt):
        run_experiment("demo", TINY, seed=5, out=tmp_path)
    run = Run.latest("demo", tmp_path)
    assert run.status() == "interrupted" and (run.checkpoints / "train.pt").is_file()
    monkeypatch.setattr(demo, "FGSM", real_fgsm)
    resumed = run_experiment("demo", resume=True, out=tmp_path)
    assert resumed.path == run.path and resumed.status() == "complete"
    assert "resuming training" in (run.path / "run.log").read_text()
    fresh = run_experiment("demo", TINY, seed=5, out=tmp_path / "fresh")
    assert (fresh.path / "metrics.json").read_bytes() == (run.path / "metrics.json").read_bytes()


def test_rebuild_report(tmp_path: Path) -> None:
    run = run_experiment("demo", TINY, out=tmp_path)
    (run.path / "report.html").unlink()
    (run.path / "figures" / "accuracy_vs_epsilon.png").unlink()
    rebuild_report(run.path)
    assert (run.path / "report.html").stat().st_size > 10_000
    assert (run.path / "figures" / "accuracy_vs_epsilon.png").is_file()


def test_config_overrides_are_typed() -> None:
    cfg = build_config(EXPERIMENTS.get("demo").config, ["lr=0.5", "epsilons=[0.1]"], seed=7)
    assert cfg.lr == 0.5 and cfg.epsilons == (0.1,) and cfg.seed == 7
    with pytest.raises(ConfigError, match=r"DemoConfig: .*'abc'"):
        build_config(EXPERIMENTS.get("demo").config, ["epochs=abc"])
    with pytest.raises(ConfigError, match="Key 'epoch' not in 'DemoConfig'"):
        build_config(EXPERIMENTS.get("demo").config, ["epoch=3"])
    with pytest.raises(ConfigError, match="expected key=value"):
        build_config(EXPERIMENTS.get("demo").config, ["epochs"])


def test_resume_rules(tmp_path: Path) -> None:
    from advlab.errors import RunError

    with pytest.raises(RunError, match="no run of demo there"):
        run_experiment("demo", resume=True, out=tmp_path)
    run_experiment("demo", TINY, out=tmp_path)
    with pytest.raises(RunError, match="is complete; nothing to resume"):
        run_experiment("demo", resume=True, out=tmp_path)
    with pytest.raises(ConfigError, match="drop --set/--seed"):
        run_experiment("demo", ["epochs=2"], resume=True, out=tmp_path)


def test_run_folders_unique_and_latest_ordering(tmp_path: Path) -> None:
    runs = [Run.create("x", tmp_path) for _ in range(12)]
    assert len({r.path for r in runs}) == 12
    for r in runs:
        r.set_status("failed")
    assert Run.latest("x", tmp_path).path == runs[-1].path
