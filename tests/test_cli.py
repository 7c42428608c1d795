"""The command line: registries listed, clear errors, data and run commands wired."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from advlab.cli import app

runner = CliRunner()


def test_list_reads_registries() -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for line in (
        "experiments:",
        "  demo ",
        "models:",
        "  small_cnn",
        "attacks:",
        "  fgsm",
        "defenses:",
        "  adversarial-training",
        "datasets:",
        "  cifar10",
        "  mnist-sample",
    ):
        assert line in result.output
    defenses = runner.invoke(app, ["list", "defenses"])
    assert defenses.exit_code == 0 and defenses.output.startswith("defenses:\n")
    assert "  pgd                  Linf PGD from a random start" in defenses.output
    assert "attacks:" not in defenses.output
    experiments = runner.invoke(app, ["list", "experiments"]).output
    assert "  demo                   small CNN on the embedded MNIST sample" in experiments
    bad = runner.invoke(app, ["list", "widgets"])
    assert bad.exit_code != 0


def advlab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = "from advlab.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_errors_are_one_line(tmp_path: Path) -> None:
    result = advlab("run", "demo", "--set", "epochs=abc", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: DemoConfig: Value 'abc' of type 'str' could not be converted to Integer"
    ]
    unknown = advlab("run", "nope", "--out", str(tmp_path))
    assert unknown.returncode == 2 and "unknown experiment 'nope'; known: " in unknown.stderr
    assert "demo, fer-train, fgsm-mnist" in unknown.stderr and "knn-mnist" in unknown.stderr
    device = advlab("run", "demo", "--device", "tpu", "--out", str(tmp_path))
    assert device.returncode == 2 and "--device 'tpu': expected cpu or cuda[:N]" in device.stderr
    assert not (tmp_path / "demo").exists()  # rejected before any run folder is made


def test_run_and_report_commands(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "run",
            "demo",
            "--out",
            str(tmp_path),
            "--seed",
            "2",
            "--set",
            "epochs=1",
            "--set",
            "n_attack=100",
            "--set",
            "epsilons=[0.0,0.2]",
        ],
    )
    assert result.exit_code == 0, result.output
    html = Path(result.output.strip().split("report: ")[-1])
    assert html.is_file() and html.parent.parent == tmp_path / "demo"
    again = runner.invoke(app, ["report", str(html.parent)])
    assert again.exit_code == 0 and str(html) in again.output


def test_data_commands_offline(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "ADVLAB_DATA_DIR": str(tmp_path), "ADVLAB_CACHE_DIR": str(tmp_path / "c")}
    code = "from advlab.cli import main; main()"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    fer = run("data", "fetch", "fer2013")
    assert fer.returncode == 2 and "advlab data import fer2013 PATH" in fer.stderr
    info = run("data", "info")
    assert info.returncode == 0 and "mnist         missing" in info.stdout
    assert "mnist-sample  embedded" in info.stdout
    verify = run("data", "verify", "mnist")
    assert verify.returncode == 1 and "FAIL mnist" in verify.stdout
    embedded = run("data", "verify", "digits")
    assert embedded.returncode == 0 and "ok   digits" in embedded.stdout


def test_verbose_logs_and_broken_dataset(tmp_path: Path) -> None:
    import os

    from datafiles import write_mnist

    write_mnist(tmp_path / "data" / "mnist")
    (tmp_path / "data" / "cifar10").mkdir()
    (tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz").write_bytes(b"not gzip at all")
    env = {**os.environ, "ADVLAB_DATA_DIR": str(tmp_path / "data"),
           "ADVLAB_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    code = "from advlab.cli import main; main()"

    def run(*args: str, cache: str = "cache") -> subprocess.CompletedProcess[str]:
        env["ADVLAB_CACHE_DIR"] = str(tmp_path / cache)
        return subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    quiet = run("data", "verify", "mnist", cache="quiet")
    assert "decoding mnist" not in quiet.stderr and "FAIL mnist" in quiet.stdout  # 40 != 70,000
    loud = run("-v", "data", "verify", "mnist")
    assert "INFO advlab.data.registry: decoding mnist" in loud.stderr
    info = run("data", "info")
    assert info.returncode == 0
    assert "cifar10       broken:" in info.stdout and "truncated or corrupt" in info.stdout


def test_train_and_models_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path))
    empty = runner.invoke(app, ["models"])
    assert "no stored models yet" in empty.output
    args = ["train", "mlp", "--data", "digits", "--set", "epochs=2", "--set", "lr=0.1",
            "--set", "width=16", "--out", str(tmp_path / "runs")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
    stored, report = Path(lines["stored"]), Path(lines["report"])
    assert stored.is_file() and stored.parent.parent == tmp_path / "models"
    assert report.parent.parent == tmp_path / "runs" / "train"
    assert (report.parent / "figures" / "learning_curves.png").is_file()
    md = (report.parent / "report.md").read_text()
    assert "width': 16" in md and "| 2 | 0.1 |" in md  # the model setting and epoch 2's row
    listing = runner.invoke(app, ["models"])
    assert listing.output.startswith("mlp          digits       test acc 0.")
    again = runner.invoke(app, args)  # same recipe: reused from the store, not retrained
    assert again.exit_code == 0 and f"stored: {stored}" in again.output
    reports = [p.read_text() for p in (tmp_path / "runs" / "train").glob("*/report.md")]
    assert sum("already in the store: not trained again" in r for r in reports) == 1
    bad = runner.invoke(app, ["train", "nope", "--data", "digits"])
    assert bad.exit_code != 0 and "unknown model 'nope'" in str(bad.exception)


def test_weights_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    info = runner.invoke(app, ["weights", "info"])
    assert info.exit_code == 0
    assert "resnet18.imagenet" in info.output and "NOT AVAILABLE" in info.output
    fake = tmp_path / "resnet18-f37072fd.pth"
    fake.write_bytes(b"not the real weights")
    bad = runner.invoke(app, ["weights", "import", str(fake)])
    assert bad.exit_code != 0 and "matches no known pretrained weights" in str(bad.exception)
    assert not (tmp_path / "cache" / "weights").exists() or not any(
        (tmp_path / "cache" / "weights").iterdir()
    )


def test_sweep_command_rejects_bad_grid(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["sweep", "demo", "--grid", "lr", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "lr" in str(bad.exception)
    unknown = runner.invoke(app, ["sweep", "demo", "--grid", "lrr=0.1,0.2", "--out", str(tmp_path)])
    assert unknown.exit_code != 0 and "lrr" in str(unknown.exception)
    assert not any(tmp_path.iterdir())  # nothing ran, no folder made


def test_export_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from advlab.train import TrainConfig
    from advlab.train.store import ModelRecipe, load_model, train_and_store

    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path))
    path = train_and_store(ModelRecipe("mlp", "digits", {"width": 8}, TrainConfig(epochs=1)))
    result = runner.invoke(app, ["export", str(path), "--format", "pt"])
    assert result.exit_code == 0, result.output
    exported = Path(result.output.strip().split("exported: ")[-1])
    assert exported.is_file() and exported != path
    a, b = load_model(path), load_model(exported)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(a(x), b(x))
    bad = runner.invoke(app, ["export", str(path), "--format", "keras"])
    assert bad.exit_code != 0 and "expected one of pt, onnx, h5" in str(bad.exception)
