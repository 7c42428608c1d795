"""Download a file from a list of mirrors: resumable, retried, checksum-verified, atomic.

The body goes to ``<dest>/<filename>.part`` and is renamed to ``<dest>/<filename>`` only
after its checksum matched, so a file at the final name is always complete and verified.
Files without a published checksum are trusted on first use: their sha256 is recorded in
``<dest>/checksums.json`` and checked on every later download.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from advlab import __version__
from advlab.errors import ChecksumError, ConfigError, DataError, DownloadError
from advlab.fileio import file_digest, write_atomic

__all__ = ["CHECKSUMS_FILE", "RemoteFile", "download", "file_digest"]

logger = logging.getLogger(__name__)

CHECKSUMS_FILE = "checksums.json"

# Seconds slept before retry number k is ``_RETRY_BACKOFF_S * 2 ** (k - 1)``; short because
# the retries are for dropped connections and overloaded servers, not long outages.
_RETRY_BACKOFF_S = 0.5
_USER_AGENT = f"advlab/{__version__} (+urllib)"
# Server-side errors worth asking again; every other 4xx means this mirror will not serve it.
_RETRYABLE_STATUS = frozenset({408, 429})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class RemoteFile:
    """A file published at one or more URLs.

    Args:
        filename: Name of the file on disk, without any folder.
        urls: Mirrors, tried in order.
        md5: Publisher's md5 digest, for sources that publish nothing stronger.
        sha256: Publisher's sha256 digest; checked instead of ``md5`` when both are given.
        size: Expected size in bytes, if known.
    """

    filename: str
    urls: tuple[str, ...]
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        name = self.filename
        if not name or name in {".", ".."} or "/" in name or "\\" in name:
            raise ConfigError(f"RemoteFile.filename must be a plain file name, found {name!r}")
        if isinstance(self.urls, str):
            raise ConfigError(
                f"RemoteFile.urls for {name!r} must be a tuple of URLs, found the string "
                f"{self.urls!r}"
            )
        object.__setattr__(self, "urls", tuple(self.urls))
        if not self.urls:
            raise ConfigError(f"RemoteFile.urls for {name!r} must hold at least one URL")
        for field, length in (("md5", 32), ("sha256", 64)):
            digest = getattr(self, field)
            if digest is not None and (len(digest) != length or not _HEX.fullmatch(digest)):
                raise ConfigError(
                    f"RemoteFile.{field} for {name!r} must be {length} hex digits, found {digest!r}"
                )
        if self.size is not None and self.size < 0:
            raise ConfigError(f"RemoteFile.size for {name!r} must be >= 0, found {self.size}")


def download(
    remote: RemoteFile,
    dest_dir: Path,
    *,
    timeout: float = 10.0,
    retries: int = 3,
    progress: bool | None = None,
    chunk_size: int = 1 << 16,
    dataset: str = "",
) -> Path:
    """Download ``remote`` into ``dest_dir`` unless a verified copy is already there.

    Args:
        remote: What to fetch and how to check it.
        dest_dir: Folder for the file; created if missing.
        timeout: Seconds allowed for connecting and for each read.
        retries: How many times one mirror is asked again after a dropped connection, a
            timeout or a 5xx answer; each retry resumes from the bytes already written.
        progress: Show a tqdm bar on stderr; ``None`` shows it when stderr is a terminal.
        chunk_size: Bytes read and written at a time.
        dataset: Dataset the file belongs to, named in the no-network message so the user
            knows what to pass to ``advlab data import``.

    Returns:
        Path of the verified file, ``dest_dir / remote.filename``.

    Raises:
        DownloadError: No mirror delivered the file.
        ChecksumError: The file differs from its published or recorded checksum.
        ConfigError: An argument is out of range.
    """
    if timeout <= 0:
        raise ConfigError(f"download timeout must be > 0 seconds, found {timeout}")
    if retries < 0:
        raise ConfigError(f"download retries must be >= 0, found {retries}")
    if chunk_size <= 0:
        raise ConfigError(f"download chunk_size must be > 0 bytes, found {chunk_size}")

    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / remote.filename
    part = dest_dir / (remote.filename + ".part")

    if final.is_file():
        if _existing_is_valid(remote, final, dest_dir):
            return final
        logger.warning("%s exists but does not match its checksum; downloading it again", final)

    show = sys.stderr.isatty() if progress is None else progress
    _fetch_from_mirrors(remote, part, timeout, retries, show, chunk_size, dataset)
    _verify_and_install(remote, part, final, dest_dir)
    return final


def _existing_is_valid(remote: RemoteFile, final: Path, dest_dir: Path) -> bool:
    if remote.size is not None and final.stat().st_size != remote.size:
        return False
    expected = _published_digest(remote)
    if expected is not None:
        algorithm, digest = expected
        return file_digest(final, algorithm) == digest
    recorded = _read_checksums(dest_dir).get(remote.filename)
    return recorded is not None and file_digest(final, "sha256") == recorded


def _published_digest(remote: RemoteFile) -> tuple[str, str] | None:
    if remote.sha256 is not None:
        return "sha256", remote.sha256.lower()
    if remote.md5 is not None:
        return "md5", remote.md5.lower()
    return None


def _verify_and_install(remote: RemoteFile, part: Path, final: Path, dest_dir: Path) -> None:
    found_size = part.stat().st_size
    if remote.size is not None and found_size != remote.size:
        part.unlink()
        raise ChecksumError(
            f"{remote.filename}: expected {remote.size} bytes, found {found_size}; "
            f"the partial download was deleted"
        )

    expected = _published_digest(remote)
    if expected is not None:
        algorithm, digest = expected
        found = file_digest(part, algorithm)
        if found != digest:
            part.unlink()
            raise ChecksumError(
                f"{remote.filename}: {algorithm} expected {digest}, found {found}; "
                f"the download was deleted"
            )
        os.replace(part, final)
        return

    found = file_digest(part, "sha256")
    checksums = _read_checksums(dest_dir)
    recorded = checksums.get(remote.filename)
    if recorded is not None and recorded != found:
        part.unlink()
        raise ChecksumError(
            f"{remote.filename}: sha256 expected {recorded} (recorded on first download in "
            f"{dest_dir / CHECKSUMS_FILE}), found {found}; the download was deleted. "
            f"If the publisher changed the file on purpose, remove its entry from "
            f"{CHECKSUMS_FILE}"
        )
    os.replace(part, final)
    if recorded is None:
        checksums[remote.filename] = found
        _write_checksums(dest_dir, checksums)
        logger.warning(
            "%s has no published checksum; recorded sha256 %s in %s and will check it from now on",
            remote.filename,
            found,
            dest_dir / CHECKSUMS_FILE,
        )


def _read_checksums(dest_dir: Path) -> dict[str, str]:
    path = dest_dir / CHECKSUMS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(
            f"{path}: expected a JSON object mapping file names to sha256 digests, "
            f"found unreadable JSON ({err})"
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise DataError(
            f"{path}: expected a JSON object mapping file names to sha256 digests, "
            f"found {type(data).__name__} with other contents"
        )
    return data


def _write_checksums(dest_dir: Path, checksums: dict[str, str]) -> None:
    text = json.dumps(dict(sorted(checksums.items())), indent=2) + "\n"
    write_atomic(dest_dir / CHECKSUMS_FILE, text)


class _Retry(Exception):
    """This mirror failed in a way that asking it again may fix."""


class _NextMirror(Exception):
    """This mirror will not serve the file; try the next one."""


class _NoNetwork(_NextMirror):
    """The host could not be reached at all (DNS, refused, unreachable, connect timeout)."""


def _fetch_from_mirrors(
    remote: RemoteFile,
    part: Path,
    timeout: float,
    retries: int,
    show: bool,
    chunk_size: int,
    dataset: str,
) -> None:
    last_error: Exception | None = None
    only_network_errors = True
    for url in remote.urls:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(_RETRY_BACKOFF_S * 2 ** (attempt - 1))
            try:
                _fetch_once(remote, url, part, timeout, show, chunk_size)
                return
            except _Retry as err:
                only_network_errors = False
                last_error = err
                logger.info("%s: %s (attempt %d of %d)", url, err, attempt + 1, retries + 1)
            except _NoNetwork as err:
                last_error = err
                logger.info("%s: %s", url, err)
                break
            except _NextMirror as err:
                only_network_errors = False
                last_error = err
                logger.info("%s: %s", url, err)
                break

    message = (
        f"could not download {remote.filename}; tried {', '.join(remote.urls)}; "
        f"last error: {last_error}"
    )
    if only_network_errors:
        name = dataset or "NAME"
        message += (
            f". There seems to be no network connection. Get {remote.filename} some other "
            f"way (e.g. from one of the URLs above, on a machine that is online) and run "
            f"`advlab data import {name} PATH`"
        )
    raise DownloadError(message)


def _fetch_once(
    remote: RemoteFile, url: str, part: Path, timeout: float, show: bool, chunk_size: int
) -> None:
    """Bring ``part`` to the full body of ``url``, resuming from what it already holds."""
    offset = part.stat().st_size if part.exists() else 0
    if remote.size is not None and offset > remote.size:
        part.unlink()
        offset = 0

    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")

    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416:
            # The .part no longer fits what the server has (already complete, or the file
            # changed); only a fresh start can tell.
            part.unlink(missing_ok=True)
            raise _Retry("HTTP 416 for a resumed download; restarting from zero") from None
        if err.code >= 500 or err.code in _RETRYABLE_STATUS:
            raise _Retry(f"HTTP {err.code} {err.reason}") from None
        raise _NextMirror(f"HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, OSError) and not isinstance(err.reason, ssl.SSLError):
            raise _NoNetwork(f"cannot reach {url}: {err.reason}") from None
        raise _NextMirror(f"cannot open {url}: {err.reason}") from None
    except (http.client.HTTPException, OSError) as err:
        # Raised while waiting for the status line: the server dropped or stalled.
        raise _Retry(f"{type(err).__name__}: {err}") from None

    with response:
        status = response.status
        if status == 206 and offset:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Retry(
                    f"server resumed at byte {start}, expected {offset}; restarting from zero"
                )
            if total is None:
                total = _content_length(response, offset)
        elif status in (200, 206):
            # A 200 to a Range request means the server ignored it: the body starts at zero.
            offset = 0
            total = _content_length(response, 0)
        else:
            raise _NextMirror(f"unexpected HTTP {status} {response.reason}")

        received = offset
        with (
            open(part, "ab" if offset else "wb") as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=remote.filename,
                disable=not show,
                leave=False,
            ) as bar,
        ):
            while True:
                try:
                    # read1, not read: read(n) waits to fill n bytes, so a timeout would
                    # discard what had arrived instead of leaving it in the .part file.
                    chunk = response.read1(chunk_size)
                except (http.client.HTTPException, OSError) as err:
                    # What arrived so far stays in the .part file for the next attempt.
                    raise _Retry(
                        f"connection dropped after {received} bytes ({type(err).__name__}: {err})"
                    ) from None
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())

    if total is not None and received < total:
        raise _Retry(f"connection closed after {received} of {total} bytes")


def _parse_content_range(header: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` of a ``Content-Range: bytes start-end/total`` header."""
    match = _CONTENT_RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None, None
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _content_length(response: http.client.HTTPResponse, offset: int) -> int | None:
    """Full file size implied by ``Content-Length``, counting the ``offset`` bytes skipped."""
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return offset + int(value)
