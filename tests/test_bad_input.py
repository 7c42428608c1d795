"""Bad input a user can give advlab (a file where a folder belongs, a damaged checkpoint or
metrics file, labels of the wrong kind, links in an import) ends in one line naming the file
or argument, what was expected and what was found: exit status 2 on the command line."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from advlab.data.archive import FileTree, safe_extract
from advlab.data.formats import read_cifar_batch
from advlab.errors import DataError, RunError
from advlab.train.store import STORE_FORMAT, load_model, weights_sha256
from datafiles import write_mnist


def _advlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "advlab", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )


def _one_line_error(done: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for part in parts:
        assert part in lines[0], lines[0]


def test_out_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "runs"
    not_a_folder.write_text("a file")
    done = _advlab("run", "demo", "--set", "epochs=1", "--out", str(not_a_folder))
    _one_line_error(done, str(not_a_folder), "cannot create a run folder there")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_out_is_one_line(tmp_path: Path) -> None:
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        done = _advlab("run", "demo", "--set", "epochs=1", "--out", str(read_only))
    finally:
        read_only.chmod(0o700)
    _one_line_error(done, "cannot create a run folder there (Permission denied)")


def test_damaged_metrics_json_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "demo" / "20261203-120000"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"experiment": "demo", "config": {}}')
    (run / "metrics.json").write_text("")
    done = _advlab("report", str(run))
    _one_line_error(done, str(run / "metrics.json"), "expected JSON")


def test_cache_folder_that_is_a_file_is_one_line(
    fresh_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advlab.data import load_dataset

    data, _ = fresh_dirs
    write_mnist(data / "mnist")
    cache = tmp_path / "cache-file"
    cache.write_text("not a folder")
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(cache))
    with pytest.raises(DataError, match=r"cache-file: cannot write the array cache there"):
        load_dataset("mnist", "train")


def _checkpoint(path: Path, **entries: object) -> Path:
    weights = {"w": torch.zeros(2)}
    state = {"format": STORE_FORMAT, "state_dict": weights, "weights_sha256": None}
    state.update(entries)
    if isinstance(state["state_dict"], dict):
        state["weights_sha256"] = weights_sha256(state["state_dict"])
    torch.save(state, path)
    return path


def test_damaged_checkpoints_are_one_line(tmp_path: Path) -> None:
    listed = _checkpoint(tmp_path / "a.pt", state_dict=[1, 2, 3])
    with pytest.raises(
        RunError, match=r"a\.pt: expected state_dict to map names to tensors, found list"
    ):
        load_model(listed)
    keyless = _checkpoint(tmp_path / "b.pt")  # weights fine, no model/dataset/input entries
    with pytest.raises(
        RunError, match=r"b\.pt: an advlab model checkpoint with a damaged description"
    ):
        load_model(keyless)


@pytest.mark.parametrize(
    ("labels", "found"),
    [
        ([0.0, 1.7], "found float64 of shape (2,)"),
        (["a", "b"], "found <U1 of shape (2,)"),
        ([[0], [1, 2]], "found ragged lists"),
    ],
)
def test_labels_that_are_not_integers_are_refused(labels: list[object], found: str) -> None:
    batch = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": labels}, protocol=2)
    with pytest.raises(
        DataError, match=r"^b1: expected a flat list of integer labels, " + re.escape(found)
    ):
        read_cifar_batch(batch, "b1")


def test_links_in_folders_and_zips_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    write_mnist(folder)
    (folder / "loop").symlink_to(".")  # would recurse forever if followed
    (folder / "elsewhere.gz").symlink_to("/etc/hostname")
    assert FileTree(folder).names() == sorted(
        p.name for p in folder.iterdir() if p.name.endswith("ubyte.gz")
    )
    archive = tmp_path / "with-link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("data/real.txt", "content")
        link = zipfile.ZipInfo("data/link")
        link.external_attr = (0o120777 << 16) | 0x10  # a symlink, as zip -y stores one
        zf.writestr(link, "/etc/passwd")
    assert FileTree(archive).names() == ["data/real.txt"]
    out = safe_extract(archive, tmp_path / "out")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "data/real.txt"
    ]
