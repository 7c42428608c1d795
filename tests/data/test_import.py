"""`advlab data import`: validate a local copy (folder or archive, nested too), then install."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from advlab.data import import_dataset, load_dataset
from advlab.data.store import install_dir
from advlab.errors import DataError
from conftest import require_data
from datafiles import write_mnist


def test_import_real_mnist_from_nested_zip(fresh_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    real = require_data("mnist")
    # Like a download from a mirror: a zip holding a tar.gz holding the folder of IDX files.
    inner = tmp_path / "mnist.tar.gz"
    with tarfile.open(inner, "w:gz", compresslevel=1) as tf:
        for gz in sorted(real.glob("*.gz")):
            tf.add(gz, arcname=f"mnist/raw/{gz.name}")
    outer = tmp_path / "download.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, arcname="payload/mnist.tar.gz")
    dest = import_dataset("mnist", outer)
    assert dest.parent == install_dir("mnist") and (dest / "train-images-idx3-ubyte.gz").is_file()
    train = load_dataset("mnist", "train")
    assert len(train) == 60000 and train.labels[:5].tolist() == [5, 0, 4, 1, 9]
    # The staging area is cleaned up.
    assert not any((install_dir("mnist").parent.parent / "staging").iterdir())


def test_import_wrong_layout_installs_nothing(
    fresh_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "not-mnist"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.txt").write_text("hello")
    with pytest.raises(DataError, match="not a recognised copy of mnist"):
        import_dataset("mnist", folder)
    assert not install_dir("mnist").exists() or not any(install_dir("mnist").iterdir())


def test_import_incomplete_copy_refused(fresh_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    write_mnist(tmp_path / "small")  # a valid layout, but 40 examples instead of 70,000
    with pytest.raises(DataError, match="expected 70000 examples of mnist in all, found 40"):
        import_dataset("mnist", tmp_path / "small")
    assert not install_dir("mnist").exists() or not any(install_dir("mnist").iterdir())


def test_import_truncated_archive(fresh_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    write_mnist(tmp_path / "m" / "mnist")
    archive = tmp_path / "mnist.tar"
    with tarfile.open(archive, "w") as tf:
        tf.add(tmp_path / "m" / "mnist", arcname="mnist")
    archive.write_bytes(archive.read_bytes()[:3000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        import_dataset("mnist", archive)
    assert not install_dir("mnist").exists() or not any(install_dir("mnist").iterdir())


def test_import_missing_path(fresh_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder to import as mnist"):
        import_dataset("mnist", tmp_path / "nope")


def test_import_real_flowers_tar(fresh_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    real = require_data("flowers17")
    copy = tmp_path / "17flowers.tar"
    shutil.copyfile(real / "17flowers.tar", copy)
    dest = import_dataset("flowers17", copy)
    assert dest == install_dir("flowers17") / "17flowers.tar"
    val = load_dataset("flowers17", "val", image_size=32)
    assert len(val) == 340 and np.bincount(val.labels).tolist() == [20] * 17


def test_reimport_replaces_previous_copy(fresh_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    real = require_data("mnist")
    first = tmp_path / "first" / "mnist-a"
    shutil.copytree(real, first)
    import_dataset("mnist", first)
    second = tmp_path / "second" / "mnist-b"
    shutil.copytree(real, second)
    dest = import_dataset("mnist", second)
    assert sorted(p.name for p in install_dir("mnist").iterdir()) == ["mnist-b"]
    assert dest == install_dir("mnist") / "mnist-b"


def test_import_removes_what_a_killed_import_left(
    fresh_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    _, cache = fresh_dirs
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    left = cache / "staging" / f".import-{proc.pid}-xyz"  # a SIGKILLed import's staging
    (left / "install").mkdir(parents=True)
    with pytest.raises(DataError):
        import_dataset("mnist", tmp_path / "missing")  # refused before staging anything
    assert left.is_dir()
    with pytest.raises(DataError):
        import_dataset("mnist", tmp_path)  # an empty folder: staged, refused, cleaned up
    assert list((cache / "staging").iterdir()) == []
