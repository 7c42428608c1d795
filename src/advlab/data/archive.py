"""Uniform read access to a dataset copy that is a folder, a tar (any compression) or a zip.

Readers of the dataset formats see a `FileTree`: a list of relative POSIX names and a way to
read them. Member names that would escape the tree (absolute paths, ``..``) are refused, both
when reading and when extracting.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from advlab.errors import DataError, UnsafeFileError
from advlab.fileio import write_atomic
from advlab.progress import progress

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")

# What a damaged archive raises, by library: gzip/zlib streams, tar headers, zip directories.
_CORRUPT = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError)


def is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _is_junk(name: str) -> bool:
    # Metadata that macOS puts into zips and tars (``__MACOSX/``, ``._name`` resource forks).
    parts = name.split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] == ".DS_Store"


def _safe_name(name: str, source: Path) -> str:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (posix.parts and ":" in posix.parts[0]):
        raise UnsafeFileError(
            f"{source}: member {name!r} points outside the archive; refusing to read it"
        )
    return posix.as_posix()


class FileTree:
    """Files of a folder or archive, addressed by relative POSIX names.

    Args:
        path: A folder, or an archive file (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"{self.path}: no such file or folder")
        if self.path.is_dir():
            self.kind = "folder"
        elif self.path.name.lower().endswith(".zip"):
            self.kind = "zip"
        elif self.path.name.lower().endswith(ARCHIVE_SUFFIXES):
            self.kind = "tar"
        else:
            raise DataError(
                f"{self.path}: expected a folder or an archive ({', '.join(ARCHIVE_SUFFIXES)})"
            )
        self._names: list[str] | None = None

    def _corrupt(self, exc: BaseException) -> DataError:
        return DataError(
            f"{self.path}: truncated or corrupt {self.kind} archive ({type(exc).__name__}: {exc})"
        )

    def names(self) -> list[str]:
        """Relative names of the regular files, sorted."""
        if self._names is None:
            if self.kind == "folder":
                found = [n for n in _regular_files(self.path) if not _is_junk(n)]
            else:
                found = [name for name, _ in self._iter_archive(lambda _n: False)]
            self._names = sorted(found)
        return self._names

    def _iter_archive(self, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes | None]]:
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(self.path) as zf:
                    for info in zf.infolist():
                        if info.is_dir() or stat.S_ISLNK(info.external_attr >> 16):
                            continue  # a link is skipped, never written as a file
                        name = _safe_name(info.filename, self.path)
                        if _is_junk(name):
                            continue
                        yield name, (zf.read(info) if want(name) else None)
            else:
                with tarfile.open(self.path, "r:*") as tf:
                    for member in tf:
                        if not member.isfile():
                            continue
                        name = _safe_name(member.name, self.path)
                        if _is_junk(name):
                            continue
                        data = None
                        if want(name):
                            fh = tf.extractfile(member)
                            if fh is None:
                                raise DataError(f"{self.path}: cannot read member {name!r}")
                            data = fh.read()
                            if len(data) != member.size:
                                raise DataError(f"{self.path}: member {name!r} is truncated")
                        yield name, data
        except (UnsafeFileError, DataError):
            raise
        except _CORRUPT as exc:
            raise self._corrupt(exc) from exc

    def iter_files(self, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
        """Yield ``(name, bytes)`` for every file whose name `want` accepts, in one pass."""
        if self.kind == "folder":
            for name in self.names():
                if want(name):
                    yield name, (self.path / name).read_bytes()
            return
        for name, data in self._iter_archive(want):
            if data is not None:
                yield name, data

    def read(self, name: str) -> bytes:
        """Bytes of one member (for archives this scans; use `iter_files` for many)."""
        for _, data in self.iter_files(lambda n: n == name):
            return data
        raise DataError(f"{self.path}: missing member {name!r}")


def _regular_files(root: Path) -> list[str]:
    """Relative POSIX names of the regular files under `root`; links (to files or folders,
    a ``loop -> .`` included) are neither followed nor listed."""
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
        for name in files:
            path = base / name
            if not path.is_symlink() and path.is_file():
                found.append(path.relative_to(root).as_posix())
    return found


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract `archive` into `dest`, refusing members that would land outside it.

    Only regular files (and the folders that hold them) are written; links and device files
    in the archive are skipped.
    """
    tree = FileTree(archive)
    if tree.kind == "folder":
        raise DataError(f"{archive}: expected an archive, found a folder")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    for name, data in progress(tree.iter_files(lambda _n: True), desc=f"unpacking {archive}"):
        target = (root / name).resolve()
        if root not in target.parents:
            raise UnsafeFileError(f"{archive}: member {name!r} would be written outside {dest}")
        write_atomic(target, data)
    return dest
