"""Atomic file writes: write to a temporary name beside the target, then rename into place.

A reader never sees a half-written file, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from advlab.errors import ConfigError, DataError


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed.

    The temporary name keeps `path`'s suffix, for writers that choose the format by suffix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to `path` atomically."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return Path(path)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc here: kill(pid, 0) is all there is to know
        return True


def owned_tempdir(parent: Path, prefix: str) -> Path:
    """A new temporary folder ``<parent>/<prefix><pid>-<random>``: the owner's PID in its
    name lets `remove_abandoned` tell what a killed process left from a live one's work."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def remove_abandoned(parent: Path, prefix: str) -> list[Path]:
    """Delete the folders `owned_tempdir(parent, prefix)` made for processes that no longer
    exist (killed while they built a cache entry or staged an import); returns them."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for folder in parent.iterdir():
        owner = folder.name[len(prefix) :].split("-", 1)[0]
        mine = folder.name.startswith(prefix) and owner.isdigit() and folder.is_dir()
        if mine and not process_alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def cache_dir() -> Path:
    """advlab's cache folder: ``$ADVLAB_CACHE_DIR``, default ``~/.cache/advlab``."""
    value = os.environ.get("ADVLAB_CACHE_DIR", "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "advlab"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks.

    Args:
        path: File to hash.
        algorithm: Any name ``hashlib.new`` accepts, e.g. ``"sha256"`` or ``"md5"``.

    Returns:
        The lower-case hex digest.
    """
    try:
        hashlib.new(algorithm)
    except ValueError:
        raise ConfigError(
            f"file_digest algorithm must be a hashlib algorithm such as 'sha256', "
            f"found {algorithm!r}"
        ) from None
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, algorithm).hexdigest()
    except FileNotFoundError:
        raise DataError(f"cannot hash {path}: expected a file, found nothing there") from None


def slug(text: str) -> str:
    """`text` as a file-name part: runs of other characters than ``A-Za-z0-9._+-`` become ``-``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-")


def digest(obj: Any) -> str:
    """SHA-1 hex digest of `obj` as key-sorted JSON (names derived from settings)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()
