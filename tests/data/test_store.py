"""The array cache: memory-mapped second loads, keyed by content, nothing half-written."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from advlab.data import load_dataset
from advlab.data.registry import get_spec
from advlab.data.store import cached_arrays
from advlab.errors import DataError
from datafiles import idx_bytes, write_mnist


def test_second_load_is_memory_mapped_and_skips_decoding(
    fresh_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, cache = fresh_dirs
    write_mnist(data / "mnist")
    first = load_dataset("mnist", "train")
    assert list((cache / "arrays" / "mnist").glob("*/train.images.npy"))
    spec = type(get_spec("mnist"))

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again despite a valid cache entry")

    monkeypatch.setattr(spec, "read", no_decoding)
    monkeypatch.setattr(spec, "detect", no_decoding)
    second = load_dataset("mnist", "train")
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(first.images, second.images)


def test_changed_source_is_decoded_again(fresh_dirs: tuple[Path, Path]) -> None:
    data, cache = fresh_dirs
    write_mnist(data / "mnist")
    assert load_dataset("mnist", "test").labels[0] == 0
    labels = (np.arange(10) + 3) % 10
    (data / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    assert load_dataset("mnist", "test").labels[0] == 3
    assert len(list((cache / "arrays" / "mnist").iterdir())) == 2


def test_failed_build_leaves_nothing(fresh_dirs: tuple[Path, Path]) -> None:
    _, cache = fresh_dirs

    def broken() -> dict[str, tuple[np.ndarray, np.ndarray]]:
        raise DataError("boom")

    with pytest.raises(DataError, match="boom"):
        cached_arrays("mnist", "k" * 24, broken, {})
    leftovers = list((cache / "arrays").rglob("*")) if (cache / "arrays").exists() else []
    assert [p for p in leftovers if p.name != "mnist"] == []  # no entry, no temporary folder


def test_corrupt_cache_entry_is_rebuilt(fresh_dirs: tuple[Path, Path]) -> None:
    data, cache = fresh_dirs
    write_mnist(data / "mnist")
    good = np.array(load_dataset("mnist", "train").images)
    (npy,) = (cache / "arrays" / "mnist").glob("*/train.images.npy")
    npy.write_bytes(b"not a numpy file")
    again = load_dataset("mnist", "train")
    np.testing.assert_array_equal(again.images, good)


def test_embedded_sets_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ADVLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path))
    digits = load_dataset("digits", "train")
    assert digits.images.shape[1:] == (8, 8, 1) and int(digits.images.max()) == 255
    sample_train, sample_test = (
        load_dataset("mnist-sample", "train"),
        load_dataset("mnist-sample", "test"),
    )
    assert (len(sample_train), len(sample_test)) == (4000, 1000)
    assert np.bincount(sample_test.labels).tolist() == [100] * 10
    x, y = sample_test.tensors()
    assert tuple(x.shape) == (1000, 1, 28, 28) and float(x.min()) >= 0.0 and float(x.max()) == 1.0
    assert y.dtype.is_floating_point is False


def test_take_is_stratified_and_seeded() -> None:
    test = load_dataset("mnist-sample", "test")
    a, b = test.take(200, seed=3), test.take(200, seed=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert np.bincount(a.labels).tolist() == [20] * 10
    assert len(test.take(7)) == 7 and test.take(7).labels.tolist() == test.labels[:7].tolist()


def _dead_pid() -> int:
    """The PID of a process that has exited and been reaped."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_builds_folder_is_removed_by_the_next_build(
    fresh_dirs: tuple[Path, Path],
) -> None:
    import os

    _, cache = fresh_dirs
    folder = cache / "arrays" / "mnist"
    dead = folder / f".building-{_dead_pid()}-abc123"  # what a SIGKILLed decode leaves
    live = folder / f".building-{os.getpid()}-def456"  # another build still at work
    for tmp in (dead, live):
        (tmp / "sub").mkdir(parents=True)
        (tmp / "sub" / "train.images.npy").write_bytes(b"x" * 1000)
    splits = {"train": (np.zeros((2, 1, 2, 2), np.uint8), np.array([0, 1]))}
    loaded = cached_arrays("mnist", "k" * 24, lambda: splits, {})
    np.testing.assert_array_equal(loaded["train"][1], [0, 1])
    assert not dead.exists() and live.is_dir()
    assert sorted(p.name for p in folder.iterdir()) == [live.name, "k" * 24]
