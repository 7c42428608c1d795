"""Readers of the file formats the datasets come in. Each returns uint8 images (N, H, W, C).

Every reader validates what it reads (magic numbers, shapes, label ranges) and raises
`DataError` naming the file and what was expected.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from advlab.data.archive import FileTree
from advlab.data.safe_unpickle import safe_loads
from advlab.errors import DataError
from advlab.progress import progress

Arrays = tuple[np.ndarray, np.ndarray]  # images (N, H, W, C) uint8, labels (N,) int64

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def check_labels(labels: object, num_classes: int, source: str) -> np.ndarray:
    """`labels` as int64 (N,), each a class in [0, num_classes).

    Raises:
        DataError: labels that are not integers (floats are never truncated), not a flat list,
            or out of range.
    """
    try:
        found = np.asarray(labels)
    except ValueError:  # ragged nesting
        raise DataError(
            f"{source}: expected a flat list of integer labels, found ragged lists"
        ) from None
    if found.dtype.kind not in "iu" or found.ndim != 1:
        raise DataError(
            f"{source}: expected a flat list of integer labels, found {found.dtype} of shape "
            f"{found.shape}"
        )
    labels = found.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise DataError(f"{source}: label {int(bad)} out of range; expected 0..{num_classes - 1}")
    return labels


# ---------------------------------------------------------------------------- IDX (MNIST)

_IDX_DTYPES: dict[int, str] = {
    0x08: "u1",
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


IDX_LIMIT = 1 << 28
"""Most bytes of data an IDX file may hold (256 MiB; MNIST's largest file holds 47 MB)."""

_IDX_HEADER_MAX = 4 + 4 * 255  # magic + up to 255 dimensions of 4 bytes


def read_idx(data: bytes, source: str, *, limit: int = IDX_LIMIT) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or not) into an array.

    The header is checked first: its dimensions (multiplied without overflow) must describe
    at most `limit` bytes. A gzip stream is then inflated to at most what the header
    describes, so a file that inflates to more (a decompression bomb) is refused after
    inflating one real file's worth, never more.

    Raises:
        DataError: a wrong magic number, a truncated or corrupt file, more data than `limit`,
            or data of another size than the header says.
    """
    gzipped = data[:2] == b"\x1f\x8b"
    head = _gunzip(data, source, _IDX_HEADER_MAX, partial=True) if gzipped else data
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise DataError(
            f"{source}: wrong magic number {head[:4].hex()}; expected 0000 08 0N (an IDX file)"
        )
    ndim = head[3]
    header = 4 + 4 * ndim
    if len(head) < header:
        raise DataError(f"{source}: IDX header truncated")
    dims = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[head[2]])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no wrap-around
    if expected > limit:
        raise DataError(
            f"{source}: header says shape {dims} ({expected:,} bytes of data); expected at most "
            f"{limit:,} bytes (a corrupt header or a decompression bomb)"
        )
    if gzipped:
        data = _gunzip(data, source, header + expected)
    if len(data) - header != expected:
        raise DataError(
            f"{source}: header says shape {dims} ({expected} bytes of data), "
            f"found {len(data) - header} bytes"
        )
    return np.frombuffer(data, dtype, offset=header).reshape(dims).copy()


def _gunzip(data: bytes, source: str, size: int, *, partial: bool = False) -> bytes:
    """The gzip stream `data` inflated: its first `size` bytes if `partial`, else all of it,
    refused as soon as it holds more than `size` bytes (memory and time bounded by `size`)."""
    out = bytearray()
    pending = data
    try:
        while pending and len(out) <= size:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member
            out += stream.decompress(pending, size + 1 - len(out))
            if partial and len(out) >= size:
                return bytes(out[:size])
            if not stream.eof:
                if stream.unconsumed_tail:  # more output than the budget allows
                    break
                raise DataError(f"{source}: truncated or corrupt gzip stream (it ends early)")
            pending = stream.unused_data  # the next member, if any
    except zlib.error as exc:
        raise DataError(f"{source}: truncated or corrupt gzip stream ({exc})") from exc
    if len(out) > size and not partial:
        raise DataError(
            f"{source}: inflates to more than the {size:,} bytes its header describes (a "
            "decompression bomb or a corrupt file); refused"
        )
    return bytes(out)


def read_mnist_split(tree: FileTree, images_name: str, labels_name: str, split: str) -> Arrays:
    def find(stem: str) -> str:
        for name in (stem + ".gz", stem):
            if name in tree.names():
                return name
        raise DataError(f"{tree.path}: missing {stem}.gz (MNIST {split} split)")

    img_name, lab_name = find(images_name), find(labels_name)
    images = read_idx(tree.read(img_name), f"{tree.path / img_name}")
    labels = read_idx(tree.read(lab_name), f"{tree.path / lab_name}")
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{tree.path / img_name}: expected uint8 images of shape (N, 28, 28), "
            f"found {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(
            f"{tree.path / lab_name}: expected {len(images)} labels, found shape {labels.shape}"
        )
    return images[..., None], check_labels(labels, 10, str(tree.path / lab_name))


# ------------------------------------------------------------------ CIFAR-10 python batches


def _str_keys(obj: dict[object, object]) -> dict[str, object]:
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def read_cifar_batch(data: bytes, source: str, num_classes: int = 10) -> Arrays:
    """One CIFAR python-version batch: dict with ``data`` (N, 3072) uint8 and ``labels``."""
    obj = safe_loads(data, source=source)
    if not isinstance(obj, dict):
        raise DataError(f"{source}: expected a dict batch, found {type(obj).__name__}")
    batch = _str_keys(obj)
    label_key = "labels" if "labels" in batch else "fine_labels"
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{source}: expected keys 'data' and 'labels', found {sorted(batch)}")
    raw = np.asarray(batch["data"])
    if raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != 3072:
        raise DataError(
            f"{source}: expected uint8 data of shape (N, 3072), found {raw.dtype} {raw.shape}"
        )
    labels = check_labels(batch[label_key], num_classes, source)
    if labels.shape != (len(raw),):
        raise DataError(f"{source}: expected {len(raw)} labels, found shape {labels.shape}")
    images = raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_cifar_pickles(tree: FileTree, folder: str) -> dict[str, Arrays]:
    """The official ``cifar-10-batches-py`` layout, from a folder or the official tar.gz."""
    wanted = {f"data_batch_{i}": ("train", i) for i in range(1, 6)} | {"test_batch": ("test", 0)}
    prefix = f"{folder}/" if folder else ""
    found: dict[str, bytes] = dict(
        tree.iter_files(lambda n: n.startswith(prefix) and n[len(prefix) :] in wanted)
    )
    missing = sorted(set(wanted) - {n[len(prefix) :] for n in found})
    if missing:
        raise DataError(f"{tree.path}: missing CIFAR-10 batch file(s) {missing} in {folder!r}")
    parts: dict[str, list[tuple[int, Arrays]]] = {"train": [], "test": []}
    for name, data in found.items():
        split, order = wanted[name[len(prefix) :]]
        parts[split].append((order, read_cifar_batch(data, f"{tree.path}:{name}")))
    out: dict[str, Arrays] = {}
    for split, batches in parts.items():
        batches.sort(key=lambda item: item[0])
        out[split] = (
            np.concatenate([b[1][0] for b in batches]),
            np.concatenate([b[1][1] for b in batches]),
        )
    return out


# ---------------------------------------------------------------------------- image folders


MAX_IMAGE_PIXELS = 40_000_000
"""Most pixels an image of a dataset may have (Flowers-17's photos have under 1 M); more is
refused from the file's header, before decoding (a decompression bomb)."""


def decode_image(
    data: bytes,
    source: str,
    mode: str,
    *,
    size: tuple[int, int] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Image.Image:
    """Decode one image file to PIL `mode`. Its header is checked before any pixel is
    decoded: it must be `size` (H, W) if given, and at most `max_pixels` pixels.

    Raises:
        DataError: not a readable image, or not of the size expected.
    """
    try:
        img = Image.open(io.BytesIO(data))  # reads the header only
        width, height = img.size
        if size is not None and (height, width) != tuple(size):
            raise DataError(
                f"{source}: expected a {size[0]}x{size[1]} image, found {height}x{width}"
            )
        if width * height > max_pixels:
            raise DataError(
                f"{source}: a {height}x{width} image; expected at most {max_pixels:,} pixels "
                "(a decompression bomb or a file of another dataset)"
            )
        img.load()
    except Image.DecompressionBombError as exc:
        raise DataError(f"{source}: refused, too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        reason = "unrecognised format" if isinstance(exc, UnidentifiedImageError) else exc
        raise DataError(f"{source}: not a readable image ({reason})") from exc
    return img.convert(mode)


def _natural_key(name: str) -> tuple[int, str]:
    # The number in a file name is its index in the split where the layout records one
    # (CIFAR-10's NNNNN.jpg); sorting by it, not by folder, restores the canonical order.
    path = PurePosixPath(name)
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, name)


def decode_images(
    items: Sequence[tuple[str, bytes]],
    source: str,
    *,
    mode: str,
    size: tuple[int, int] | None,
    transform: Callable[[Image.Image], Image.Image] | None = None,
) -> np.ndarray:
    """Decode images to one uint8 array (N, H, W, C); every image must have `size` (H, W)."""
    channels = len(mode)
    arrays = []
    for name, data in progress(items, total=len(items), desc=f"decoding {source}"):
        # Without a transform every image must have `size`: checked from its header.
        img = decode_image(data, f"{source}:{name}", mode, size=None if transform else size)
        if transform is not None:
            img = transform(img)
        arr = np.asarray(img, dtype=np.uint8).reshape(img.height, img.width, channels)
        if size is not None and arr.shape[:2] != size:
            raise DataError(
                f"{source}:{name}: expected a {size[0]}x{size[1]} image, "
                f"found {arr.shape[0]}x{arr.shape[1]}"
            )
        arrays.append(arr)
    if not arrays:
        return np.zeros((0, *(size or (0, 0)), channels), np.uint8)
    return np.stack(arrays)


def find_split_root(names: Sequence[str], splits: Sequence[str]) -> str | None:
    """Prefix under which ``<split>/<class>/<file>`` image folders sit ('' for the top)."""
    for name in names:
        parts = PurePosixPath(name).parts
        for i, part in enumerate(parts[:-2]):
            if part in splits and parts[-1].lower().endswith(IMAGE_SUFFIXES):
                return "/".join(parts[:i])
    return None


def read_image_folders(
    tree: FileTree,
    splits: Sequence[str],
    classes: Sequence[str],
    *,
    mode: str,
    size: tuple[int, int] | None,
    split_of: Callable[[str, str], str] | None = None,
) -> dict[str, Arrays]:
    """Image-folder layout ``[prefix/]<folder>/<class>/<file>`` for each folder in `splits`.

    `split_of(folder, file_name)` maps a file to its split (FER2013 keeps two splits in one
    folder, told apart by file-name prefix); by default a file's split is its folder. Labels
    follow the order of `classes`, never the alphabetical order of folder names.
    """
    # One pass over the archive: read every image, then work out the layout from the names.
    blobs = dict(tree.iter_files(lambda n: n.lower().endswith(IMAGE_SUFFIXES)))
    names = sorted(blobs)
    root = find_split_root(names, splits)
    if root is None:
        raise DataError(
            f"{tree.path}: expected image folders {'/'.join(splits)}/<class>/<image>, found none "
            f"(first entries: {names[:3]})"
        )
    class_index = {c: i for i, c in enumerate(classes)}
    prefix = f"{root}/" if root else ""
    chosen: dict[str, list[tuple[str, int]]] = {}
    for name in names:
        if not name.startswith(prefix) or not name.lower().endswith(IMAGE_SUFFIXES):
            continue
        parts = PurePosixPath(name[len(prefix) :]).parts
        if len(parts) != 3 or parts[0] not in splits:
            continue
        folder, cls, fname = parts
        if cls not in class_index:
            raise DataError(
                f"{tree.path}: unknown class folder {folder}/{cls}; expected one of {list(classes)}"
            )
        split = split_of(folder, fname) if split_of else folder
        chosen.setdefault(split, []).append((name, class_index[cls]))
    out: dict[str, Arrays] = {}
    for split, items in chosen.items():
        items.sort(key=lambda item: _natural_key(item[0]))
        images = decode_images(
            [(n, blobs[n]) for n, _ in items], str(tree.path), mode=mode, size=size
        )
        out[split] = images, np.array([lab for _, lab in items], dtype=np.int64)
    return out


# ---------------------------------------------------------------------------- FER2013 csv


def read_fer_csv(
    data: bytes, source: str, usage_to_split: dict[str, str], num_classes: int = 7
) -> dict[str, Arrays]:
    """Kaggle ``fer2013.csv``: columns emotion, pixels (2304 numbers), Usage."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace")))
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:3]] != ["emotion", "pixels", "Usage"]:
        raise DataError(f"{source}: expected header 'emotion,pixels,Usage', found {header}")
    rows: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for line_no, row in enumerate(progress(reader, desc=f"reading {source}"), start=2):
        if not row:
            continue
        if len(row) < 3:
            raise DataError(f"{source}: line {line_no}: expected 3 columns, found {len(row)}")
        try:
            pixels = np.array(row[1].split(), dtype=np.int64)
            emotion = int(row[0])
        except ValueError as exc:
            raise DataError(f"{source}: line {line_no}: not a number ({exc})") from exc
        if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
            raise DataError(
                f"{source}: line {line_no}: expected 2304 pixel values in 0..255, "
                f"found {pixels.size} values"
            )
        if not 0 <= emotion < num_classes:
            raise DataError(
                f"{source}: line {line_no}: label {emotion} out of range; "
                f"expected 0..{num_classes - 1}"
            )
        usage = row[2].strip()
        if usage not in usage_to_split:
            raise DataError(
                f"{source}: line {line_no}: Usage {usage!r}; expected one of {list(usage_to_split)}"
            )
        bucket = rows.setdefault(usage_to_split[usage], ([], []))
        bucket[0].append(pixels.astype(np.uint8).reshape(48, 48, 1))
        bucket[1].append(emotion)
    return {
        split: (np.stack(imgs), np.array(labs, np.int64)) for split, (imgs, labs) in rows.items()
    }
