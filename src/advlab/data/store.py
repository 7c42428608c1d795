"""Where dataset files are looked for, and the cache of decoded arrays.

Lookup order for a dataset's files: ``$ADVLAB_DATA_DIR/<name>/``, then
``$ADVLAB_CACHE_DIR/datasets/<name>/`` (default ``~/.cache/advlab``), which is where
``advlab data fetch`` and ``advlab data import`` install. ``ADVLAB_DATA_DIR`` is read-only to
advlab. Decoded arrays are cached as .npy under ``$ADVLAB_CACHE_DIR/arrays``, keyed by the
sha256 of the source, and memory-mapped on later loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from advlab.errors import DataError
from advlab.fileio import cache_dir, file_digest, owned_tempdir, remove_abandoned

# Bump when a reader changes what it decodes, so stale caches are not reused.
CACHE_FORMAT = 1


def data_dir() -> Path | None:
    """The user's read-only data folder (``ADVLAB_DATA_DIR``), if set."""
    value = os.environ.get("ADVLAB_DATA_DIR", "").strip()
    return Path(value).expanduser() if value else None


def install_dir(name: str) -> Path:
    """Where fetch/import put a dataset's files."""
    return cache_dir() / "datasets" / name


def search_dirs(name: str) -> list[Path]:
    """Folders that may hold `name`'s files, in lookup order (existing ones only)."""
    dirs = []
    root = data_dir()
    if root is not None:
        dirs.append(root / name)
    dirs.append(install_dir(name))
    return [d for d in dirs if d.is_dir()]


def fingerprint(path: Path) -> str:
    """sha256 of a file's bytes; for a folder, of its files' names and bytes."""
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(f"{p.relative_to(path).as_posix()}\0{file_digest(p)}\n".encode())
        return h.hexdigest()
    # Not memoised by mtime: a file rewritten within the clock's granularity would be missed.
    # Hashing runs at ~1 GB/s, so even the 45 MB FER2013 archive costs well under 0.1 s.
    return file_digest(path)


Splits = dict[str, tuple[np.ndarray, np.ndarray]]
BUILDING = ".building-"  # prefix of the temporary folders of cache entries being written


def cached_arrays(
    dataset: str, key: str, build: Callable[[], Splits], meta: Mapping[str, object]
) -> Splits:
    """Arrays of every split, from the cache (memory-mapped) or built and then cached.

    The cache entry is written into a temporary folder and renamed into place, so an
    interrupted or failed build leaves nothing behind; the folder of a build whose process was
    killed (which could not clean up) is removed by the next build in that dataset's cache.
    """
    entry = cache_dir() / "arrays" / dataset / key
    if (entry / "meta.json").is_file():
        try:
            return _load_entry(entry)
        except (OSError, ValueError, KeyError):
            shutil.rmtree(entry, ignore_errors=True)
    remove_abandoned(entry.parent, BUILDING)
    splits = build()
    try:
        tmp = owned_tempdir(entry.parent, BUILDING)
    except OSError as exc:
        raise DataError(
            f"{cache_dir()}: cannot write the array cache there ({exc.strerror}); expected a "
            "writable folder (set ADVLAB_CACHE_DIR)"
        ) from None
    try:
        for split, (images, labels) in splits.items():
            np.save(tmp / f"{split}.images.npy", np.ascontiguousarray(images))
            np.save(tmp / f"{split}.labels.npy", np.asarray(labels, np.int64))
        info = {**meta, "cache_format": CACHE_FORMAT, "splits": sorted(splits)}
        (tmp / "meta.json").write_text(json.dumps(info, indent=2))
        try:
            os.replace(tmp, entry)
        except OSError:
            # Another process cached the same entry first; theirs is as good as ours.
            if not (entry / "meta.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _load_entry(entry)


def _load_entry(entry: Path) -> Splits:
    info = json.loads((entry / "meta.json").read_text())
    if info.get("cache_format") != CACHE_FORMAT:
        raise ValueError("stale cache format")
    return {
        split: (
            np.load(entry / f"{split}.images.npy", mmap_mode="r"),
            np.load(entry / f"{split}.labels.npy", mmap_mode="r"),
        )
        for split in info["splits"]
    }
