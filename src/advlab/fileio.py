"""Atomic file writes: write to a temporary name beside the target, then rename into place.

A reader never sees a half-written file, and a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
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
