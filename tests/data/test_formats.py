"""File formats: canonical layouts load exactly; every kind of bad input gets a clear error."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advlab.data import load_dataset
from advlab.data.archive import FileTree, safe_extract
from advlab.data.formats import read_fer_csv, read_idx
from advlab.data.safe_unpickle import safe_loads
from advlab.errors import DataError, DatasetNotFoundError, UnsafeFileError
from conftest import require_data
from datafiles import idx_bytes, write_mnist

# ------------------------------------------------------------------------------------ helpers


def cifar_batch(data: np.ndarray, labels: list[int], tag: str) -> bytes:
    # Canonical python-version batch: bytes keys, (N, 3072) uint8 rows of R, G, B planes.
    batch = {
        b"batch_label": tag.encode(),
        b"labels": labels,
        b"data": data,
        b"filenames": [f"{tag}_{i}.png".encode() for i in range(len(labels))],
    }
    return pickle.dumps(batch, protocol=2)


def lossless_reference() -> dict[str, np.ndarray]:
    with np.load(require_data("cifar10") / "cifar10_lossless_ref.npz") as ref:
        return {k: ref[k] for k in ref.files}


def write_cifar_pickles(folder: Path, ref: dict[str, np.ndarray], per_batch: int = 8) -> None:
    out = folder / "cifar-10-batches-py"
    out.mkdir(parents=True)
    for i in range(5):
        rows = slice(i * per_batch, (i + 1) * per_batch)
        labels = [int(v) for v in ref["train_labels"][rows]]
        (out / f"data_batch_{i + 1}").write_bytes(
            cifar_batch(ref["train_data"][rows], labels, f"training batch {i + 1} of 5")
        )
    labels = [int(v) for v in ref["test_labels"][:per_batch]]
    (out / "test_batch").write_bytes(cifar_batch(ref["test_data"][:per_batch], labels, "test"))
    meta = {b"label_names": [b"airplane"], b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    (out / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def as_nhwc(rows: np.ndarray) -> np.ndarray:
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


# ------------------------------------------------------------------------------------- MNIST


def test_mnist_idx_roundtrip(fresh_dirs: tuple[Path, Path]) -> None:
    data, _ = fresh_dirs
    write_mnist(data / "mnist")
    train = load_dataset("mnist", "train")
    assert train.images.shape == (30, 28, 28, 1) and train.images.dtype == np.uint8
    assert train.labels.tolist() == [i % 10 for i in range(30)]
    assert len(load_dataset("mnist", "test")) == 10


def test_idx_wrong_magic() -> None:
    bad = b"\x12\x34\x08\x01" + (3).to_bytes(4, "big") + b"abc"
    with pytest.raises(DataError, match="wrong magic number 12340801"):
        read_idx(bad, "x.idx")


def test_idx_wrong_shape() -> None:
    data = idx_bytes(np.zeros((4, 28, 28)))[:-10]
    with pytest.raises(DataError, match=r"x\.idx: header says shape \(4, 28, 28\)"):
        read_idx(data, "x.idx")


def test_idx_truncated_gzip() -> None:
    data = gzip.compress(idx_bytes(np.zeros((4, 28, 28))))
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        read_idx(data[: len(data) // 2], "x.gz")


def test_idx_gzip_bomb_is_refused_after_one_files_worth() -> None:
    # A valid header for 10 images (7,840 bytes of data), then 64 MB of zeros: the stream is
    # inflated only to what the header describes, then refused.
    bomb = gzip.compress(idx_bytes(np.zeros((10, 28, 28))) + bytes(64 << 20), compresslevel=1)
    assert len(bomb) < 1 << 20
    with pytest.raises(DataError, match=r"x\.gz: inflates to more than the 7,856 bytes its header"):
        read_idx(bomb, "x.gz")


def test_idx_header_of_impossible_size_is_refused_before_inflating() -> None:
    huge = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (2**32 - 1,) * 3)
    for data in (huge, gzip.compress(huge + bytes(100))):
        with pytest.raises(DataError, match=r"header says shape \(4294967295, 4294967295, "):
            read_idx(data, "x.idx")  # 2**96 bytes: a 64-bit product would have wrapped
    with pytest.raises(DataError, match="expected at most 1,000 bytes"):
        read_idx(idx_bytes(np.zeros((2, 28, 28))), "x.idx", limit=1000)


def test_idx_multi_member_gzip_reads_whole() -> None:
    array = np.arange(4 * 28 * 28).reshape(4, 28, 28) % 256
    raw = idx_bytes(array)
    data = gzip.compress(raw[:100]) + gzip.compress(raw[100:])  # two gzip members, as cat makes
    np.testing.assert_array_equal(read_idx(data, "x.gz"), array)


def _png_header(width: int, height: int) -> bytes:
    """A PNG of that size as far as its first (empty) pixel chunk: what a reader sees before
    it decodes any pixel."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"")


def test_image_bomb_and_wrong_size_refused_from_the_header() -> None:
    from advlab.data.formats import decode_image, decode_images

    with pytest.raises(DataError, match=r"a\.jpg: refused, too many pixels"):
        decode_image(_png_header(20000, 20000), "a.jpg", "L")  # past PIL's own bomb limit
    with pytest.raises(DataError, match=r"b\.jpg: a 8000x8000 image; expected at most 40,000,000"):
        decode_image(_png_header(8000, 8000), "b.jpg", "L")
    with pytest.raises(DataError, match=r"fer:c\.png: expected a 48x48 image, found 600x800"):
        decode_images([("c.png", _png_header(800, 600))], "fer", mode="L", size=(48, 48))


def test_mnist_label_out_of_range(fresh_dirs: tuple[Path, Path]) -> None:
    data, _ = fresh_dirs
    labels = np.arange(30) % 10
    labels[7] = 11
    write_mnist(data / "mnist", **{"train-labels-idx1-ubyte.gz": idx_bytes(labels)})
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz: label 11 out of range"):
        load_dataset("mnist", "train")


def test_mnist_images_wrong_shape(fresh_dirs: tuple[Path, Path]) -> None:
    data, _ = fresh_dirs
    write_mnist(data / "mnist", **{"t10k-images-idx3-ubyte.gz": idx_bytes(np.zeros((10, 20, 20)))})
    with pytest.raises(DataError, match=r"expected uint8 images of shape \(N, 28, 28\)"):
        load_dataset("mnist", "test")


def test_mnist_missing_file(fresh_dirs: tuple[Path, Path]) -> None:
    data, cache = fresh_dirs
    write_mnist(data / "mnist")
    (data / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\.gz"):
        load_dataset("mnist", "train")
    # Nothing half-built is left in the cache.
    assert not list((cache / "arrays").rglob("*.npy"))


def test_missing_dataset_names_the_fix(fresh_dirs: tuple[Path, Path]) -> None:
    with pytest.raises(DatasetNotFoundError, match="advlab data import cifar10 PATH"):
        load_dataset("cifar10", "train")


# ---------------------------------------------------------------------------------- CIFAR-10


def test_cifar_pickle_folder_and_tarball(fresh_dirs: tuple[Path, Path]) -> None:
    ref = lossless_reference()
    data, _ = fresh_dirs
    write_cifar_pickles(data / "cifar10", ref)
    train = load_dataset("cifar10", "train")
    np.testing.assert_array_equal(train.images, as_nhwc(ref["train_data"][:40]))
    np.testing.assert_array_equal(train.labels, ref["train_labels"][:40])
    test = load_dataset("cifar10", "test")
    np.testing.assert_array_equal(test.images, as_nhwc(ref["test_data"][:8]))

    # The same batches inside the official tarball name load the same pixels.
    folder = data / "cifar10"
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tf:
        tf.add(folder / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    shutil.rmtree(folder / "cifar-10-batches-py")
    again = load_dataset("cifar10", "train")
    np.testing.assert_array_equal(again.images, train.images)
    x, y = again.tensors()
    assert y.tolist() == train.labels.tolist()
    assert x.shape == (40, 3, 32, 32) and float(x.max()) <= 1.0
    assert np.allclose(x[0].permute(1, 2, 0).numpy() * 255, train.images[0])


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/advlab-pwned",))


def test_restricted_unpickler_refuses_code(fresh_dirs: tuple[Path, Path]) -> None:
    payload = pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2)
    with pytest.raises(UnsafeFileError, match=r"refusing to unpickle global (posix|os)\.system"):
        safe_loads(payload, source="data_batch_1")
    assert not Path("/tmp/advlab-pwned").exists()
    # Through the loader too: a crafted batch file in a dataset folder.
    data, _ = fresh_dirs
    folder = data / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(payload)
    with pytest.raises(UnsafeFileError):
        load_dataset("cifar10", "train")
    assert not Path("/tmp/advlab-pwned").exists()


def test_cifar_pickle_wrong_shape_and_labels() -> None:
    from advlab.data.formats import read_cifar_batch

    bad_shape = cifar_batch(np.zeros((4, 3000), np.uint8), [0, 1, 2, 3], "b")
    with pytest.raises(DataError, match=r"expected uint8 data of shape \(N, 3072\)"):
        read_cifar_batch(bad_shape, "data_batch_1")
    bad_label = cifar_batch(np.zeros((2, 3072), np.uint8), [0, 10], "b")
    with pytest.raises(DataError, match="data_batch_1: label 10 out of range"):
        read_cifar_batch(bad_label, "data_batch_1")


def _png(rgb: tuple[int, int, int], size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_image_folder_order_and_wrong_layout(
    fresh_dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = fresh_dirs
    root = data / "cifar10" / "imgs"
    # Canonical index in the file name decides the order, not the class folder.
    for idx, cls in [(2, "airplane"), (0, "truck"), (1, "cat")]:
        for split in ("train", "test"):
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            (root / split / cls / f"{idx:05d}.png").write_bytes(_png((idx * 50, 0, 0)))
    train = load_dataset("cifar10", "train")
    assert train.labels.tolist() == [9, 3, 0]
    assert train.images[:, 0, 0, 0].tolist() == [0, 50, 100]

    (root / "train" / "kangaroo").mkdir()
    (root / "train" / "kangaroo" / "00003.png").write_bytes(_png((1, 2, 3)))
    data2 = data.parent / "data2"
    shutil.copytree(data, data2)
    monkeypatch.setenv("ADVLAB_DATA_DIR", str(data2))
    with pytest.raises(DataError, match="unknown class folder train/kangaroo"):
        load_dataset("cifar10", "train")


def test_image_wrong_size(fresh_dirs: tuple[Path, Path]) -> None:
    data, _ = fresh_dirs
    for split in ("train", "test"):
        folder = data / "cifar10" / split / "cat"
        folder.mkdir(parents=True)
        (folder / "00000.png").write_bytes(_png((1, 2, 3), size=30))
    with pytest.raises(DataError, match="expected a 32x32 image, found 30x30"):
        load_dataset("cifar10", "train")


# ---------------------------------------------------------------------------------- archives


def test_truncated_archive(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        payload = np.random.default_rng(0).bytes(200_000)
        info = tarfile.TarInfo("train/cat/00000.png")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    archive.write_bytes(archive.read_bytes()[:50_000])
    with pytest.raises(DataError, match=r"x\.tar\.gz: truncated or corrupt tar archive"):
        FileTree(archive).names()


def test_archive_escape_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/readme.txt", "fine")
        zf.writestr("../../escaped.txt", "gotcha")
    dest = tmp_path / "out" / "inner"
    with pytest.raises(UnsafeFileError, match="points outside the archive"):
        safe_extract(archive, dest)
    assert (
        not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "escaped.txt").exists()
    )

    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tf:
        info = tarfile.TarInfo("/etc/advlab-evil")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UnsafeFileError):
        FileTree(tar_path).names()


# ----------------------------------------------------------------------------------- FER2013


def _fer_csv(rows: list[tuple[int, int, str]]) -> bytes:
    lines = ["emotion,pixels,Usage"]
    for label, n_pixels, usage in rows:
        lines.append(f"{label},{' '.join(str(i % 256) for i in range(n_pixels))},{usage}")
    return ("\n".join(lines) + "\n").encode()


def test_fer_csv_splits() -> None:
    usage = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    data = _fer_csv(
        [
            (3, 2304, "Training"),
            (6, 2304, "Training"),
            (0, 2304, "PublicTest"),
            (1, 2304, "PrivateTest"),
        ]
    )
    splits = read_fer_csv(data, "fer2013.csv", usage)
    assert splits["train"][1].tolist() == [3, 6]
    assert splits["val"][0].shape == (1, 48, 48, 1)
    assert int(splits["test"][0][0, 0, 5, 0]) == 48 * 0 + 5 + 0  # row-major pixel order
    assert splits["test"][1].tolist() == [1]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(7, 2304, "Training")], "line 2: label 7 out of range; expected 0..6"),
        ([(1, 2300, "Training")], "line 2: expected 2304 pixel values"),
        ([(1, 2304, "Validation")], "line 2: Usage 'Validation'"),
    ],
)
def test_fer_csv_bad_rows(rows: list[tuple[int, int, str]], message: str) -> None:
    usage = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
    with pytest.raises(DataError, match=message):
        read_fer_csv(_fer_csv(rows), "fer2013.csv", usage)


def test_fer_csv_wrong_header() -> None:
    with pytest.raises(DataError, match="expected header 'emotion,pixels,Usage'"):
        read_fer_csv(b"label,data\n1,2\n", "fer2013.csv", {})


def _jpeg_gray(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (48, 48), value).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def test_fer_image_folders_in_zip(fresh_dirs: tuple[Path, Path]) -> None:
    data, _ = fresh_dirs
    (data / "fer2013").mkdir()
    members = {
        "fer/train/happy/Training_10.jpg": 30,
        "fer/train/neutral/Training_2.jpg": 60,
        "fer/test/sad/PublicTest_5.jpg": 90,
        "fer/test/surprise/PrivateTest_7.jpg": 120,
        "fer/test/angry/PrivateTest_3.jpg": 150,
    }
    with zipfile.ZipFile(data / "fer2013" / "archive.zip", "w") as zf:
        for name, value in members.items():
            zf.writestr(name, _jpeg_gray(value))
    train = load_dataset("fer2013", "train")
    # csv label order: happy 3, neutral 6 (alphabetical folder order would make neutral 4).
    assert train.labels.tolist() == [6, 3]  # sorted by the number in the file name
    assert abs(int(train.images[1, 24, 24, 0]) - 30) <= 2
    assert load_dataset("fer2013", "val").labels.tolist() == [4]
    assert load_dataset("fer2013", "test").labels.tolist() == [0, 5]


def test_macos_zip_metadata_ignored(fresh_dirs: tuple[Path, Path]) -> None:
    data, _ = fresh_dirs
    (data / "fer2013").mkdir()
    with zipfile.ZipFile(data / "fer2013" / "fer.zip", "w") as zf:
        zf.writestr("__MACOSX/train/happy/._Training_1.jpg", b"\x00\x05\x16\x07resource fork")
        zf.writestr("train/happy/Training_1.jpg", _jpeg_gray(200))
        zf.writestr("train/happy/._Training_1.jpg", b"\x00\x05\x16\x07resource fork")
        zf.writestr("test/sad/PublicTest_1.jpg", _jpeg_gray(10))
    assert load_dataset("fer2013", "train").labels.tolist() == [3]


def test_wrong_layout_folder_is_named(fresh_dirs: tuple[Path, Path]) -> None:
    data, _ = fresh_dirs
    (data / "mnist").mkdir()
    (data / "mnist" / "notes.txt").write_text("no idx files here")
    with pytest.raises(
        DataError, match=r"mnist: no recognised copy of mnist in this folder.*notes"
    ):
        load_dataset("mnist", "train")


def test_flowers_split_file_checked(tmp_path: Path) -> None:
    from scipy.io import savemat

    from advlab.data.registry import _official_flowers_split

    mat = tmp_path / "datasplits.mat"
    savemat(mat, {"trn1": [[1, 2]], "val1": [[3]], "tst1": [[1400]]})
    with pytest.raises(DataError, match=r"tst1 must hold image numbers in 1\.\.1360"):
        _official_flowers_split(mat)
    savemat(mat, {"trn1": [[1, 2]], "val1": [[3]], "tst1": [[2, 4]]})
    with pytest.raises(DataError, match=r"must be disjoint; shared images e.g. \[2\]"):
        _official_flowers_split(mat)
    savemat(mat, {"trn1": [[1, 2]], "val1": [[3]]})
    with pytest.raises(DataError, match="expected variables trn1, val1, tst1"):
        _official_flowers_split(mat)
    savemat(mat, {"trn1": [[5, 1]], "val1": [[3]], "tst1": [[2, 4]]})
    split = _official_flowers_split(mat)
    assert split["train"].tolist() == [0, 2, 4] and split["val"].tolist() == [1, 3]


def test_flowers_bad_file_names(fresh_dirs: tuple[Path, Path]) -> None:
    data, _ = fresh_dirs
    jpg = data / "flowers17" / "jpg"
    jpg.mkdir(parents=True)
    for i in (1, 2):
        (jpg / f"image_{i:04d}.jpg").write_bytes(_png((1, 2, 3)))
    (jpg / "image_copy.jpg").write_bytes(_png((1, 2, 3)))
    with pytest.raises(DataError, match=r"expected jpg/image_0001\.jpg \.\. image_1360\.jpg once"):
        load_dataset("flowers17", "all", image_size=16)
