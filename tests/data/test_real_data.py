"""The four real datasets under ADVLAB_DATA_DIR load with their canonical counts and labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from advlab.data import load_dataset, verify
from conftest import require_data

pytestmark = pytest.mark.realdata


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def test_mnist_canonical() -> None:
    require_data("mnist")
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape[1:] == (28, 28, 1) and train.images.dtype == np.uint8
    assert train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(test.labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


def test_cifar10_canonical_order_and_jpeg_fidelity() -> None:
    folder = require_data("cifar10")
    train, test = load_dataset("cifar10", "train"), load_dataset("cifar10", "test")
    assert (len(train), len(test)) == (50000, 10000)
    assert np.bincount(train.labels).tolist() == [5000] * 10
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    with np.load(folder / "cifar10_lossless_ref.npz") as ref:
        np.testing.assert_array_equal(train.labels[:4000], ref["train_labels"])
        np.testing.assert_array_equal(test.labels[:1000], ref["test_labels"])
        lossless = ref["test_data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    # JPEG noise against the real pixels, as PROVENANCE.md measures it (5.799 on test 0-999).
    mae = np.abs(lossless.astype(np.int16) - test.images[:1000].astype(np.int16)).mean()
    assert 5.7 < mae < 5.9


@pytest.mark.xdist_group("fer2013")  # one worker decodes FER2013 for every test that needs it
def test_fer2013_splits_and_class_order() -> None:
    require_data("fer2013")
    counts = {
        "train": [3995, 436, 4097, 7215, 4830, 3171, 4965],
        "val": [467, 56, 496, 895, 653, 415, 607],
        "test": [491, 55, 528, 879, 594, 416, 626],
    }
    for split, expected in counts.items():
        ds = load_dataset("fer2013", split)
        assert ds.images.shape[1:] == (48, 48, 1)
        # csv label order (angry 0 ... sad 4, surprise 5, neutral 6), not alphabetical.
        assert np.bincount(ds.labels, minlength=7).tolist() == expected
    assert ds.classes[4:] == ("sad", "surprise", "neutral")


def test_flowers17_split() -> None:
    require_data("flowers17")
    everything = load_dataset("flowers17", "all")
    assert len(everything) == 1360 and everything.images.shape[1:] == (128, 128, 3)
    assert np.bincount(everything.labels).tolist() == [80] * 17
    train, val = load_dataset("flowers17", "train"), load_dataset("flowers17", "val")
    assert (len(train), len(val)) == (1020, 340)
    assert np.bincount(train.labels).tolist() == [60] * 17
    assert np.bincount(val.labels).tolist() == [20] * 17
    # Disjoint, and seeded: the same split every time.
    assert not set(map(bytes, train.images[:50])) & set(map(bytes, val.images))
    again = load_dataset("flowers17", "val")
    np.testing.assert_array_equal(again.images, val.images)


def test_flowers17_official_split_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy.io import savemat

    folder = require_data("flowers17")
    data = tmp_path / "data" / "flowers17"
    data.mkdir(parents=True)
    os.symlink(folder / "17flowers.tar", data / "17flowers.tar")
    trn = np.arange(1, 1361, 4)
    val = np.arange(2, 1361, 4)
    tst = np.sort(np.concatenate([np.arange(3, 1361, 4), np.arange(4, 1361, 4)]))
    savemat(data / "datasplits.mat", {"trn1": trn[None], "val1": val[None], "tst1": tst[None]})
    monkeypatch.setenv("ADVLAB_DATA_DIR", str(tmp_path / "data"))
    train = load_dataset("flowers17", "train", image_size=32)
    assert len(train) == len(trn) + len(val) == 680
    valid = load_dataset("flowers17", "val", image_size=32)
    assert len(valid) == len(tst) and train.images.shape[1:] == (32, 32, 3)
    np.testing.assert_array_equal(valid.labels, (tst - 1) // 80)


def test_verify_all_and_data_dir_untouched() -> None:
    root = require_data("mnist").parent
    for name in ("cifar10", "fer2013", "flowers17"):
        require_data(name)
    before = snapshot(root)
    for name in ("mnist", "cifar10", "fer2013", "flowers17"):
        result = verify(name)
        assert result.ok, result.problems
    assert snapshot(root) == before
