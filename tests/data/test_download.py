"""Tests for advlab.data.download against a local HTTP server with Range support."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from advlab.data import download as download_module
from advlab.data.download import RemoteFile, download, file_digest
from advlab.errors import ChecksumError, ConfigError, DownloadError

PAYLOAD = random.Random(0).randbytes(300_000)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()
NAME = "payload.bin"


@dataclass
class ServerState:
    """What the handler serves, and a log of what it was asked."""

    payload: bytes = PAYLOAD
    status: int | None = None  # answer every request to /file with this error status
    drop_first_after: int | None = None  # first request: send this many body bytes, hang up
    stall_first_s: float = 0.0  # ...or, with this > 0, go silent for this long instead
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Server:
    def __init__(self, httpd: ThreadingHTTPServer, state: ServerState) -> None:
        self.state = state
        self.base = f"http://127.0.0.1:{httpd.server_address[1]}"

    def url(self, path: str = "/file") -> str:
        return self.base + path


def _make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            range_header = self.headers.get("Range")
            with state.lock:
                state.requests.append((self.path, range_header))
                first = len(state.requests) == 1
            if self.path != "/file":
                self.send_error(404)
                return
            if state.status is not None:
                self.send_error(state.status)
                return

            body = state.payload
            start = 0
            if range_header and not state.ignore_range:
                start = int(range_header.removeprefix("bytes=").rstrip("-"))
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            self.send_header("Content-Length", str(len(chunk)))
            self.end_headers()
            if first and state.drop_first_after is not None:
                self.wfile.write(chunk[: state.drop_first_after])
                self.wfile.flush()
                time.sleep(state.stall_first_s)
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.wfile.write(chunk)

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = ServerState()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    httpd.daemon_threads = True
    # A short poll interval keeps shutdown() from costing half a second per test.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield Server(httpd, state)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module, "_RETRY_BACKOFF_S", 0.0)


def test_plain_download_verifies_sha256_and_reuses_file(server: Server, tmp_path: Path) -> None:
    remote = RemoteFile(NAME, (server.url(),), sha256=SHA256, size=len(PAYLOAD))

    path = download(remote, tmp_path, progress=False)

    assert path == tmp_path / NAME
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]
    assert server.state.requests == [("/file", None)]

    # A verified copy is returned without asking the server again.
    assert download(remote, tmp_path, progress=False) == path
    assert len(server.state.requests) == 1


def test_md5_only(server: Server, tmp_path: Path) -> None:
    path = download(RemoteFile(NAME, (server.url(),), md5=MD5), tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "checksums.json").exists()


def test_resume_after_dropped_connection(server: Server, tmp_path: Path) -> None:
    half = len(PAYLOAD) // 2
    server.state.drop_first_after = half

    path = download(RemoteFile(NAME, (server.url(),), sha256=SHA256), tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == [("/file", None), ("/file", f"bytes={half}-")]
    assert not (tmp_path / f"{NAME}.part").exists()


def test_resume_after_read_timeout(server: Server, tmp_path: Path) -> None:
    server.state.drop_first_after = 50_000
    server.state.stall_first_s = 1.0

    remote = RemoteFile(NAME, (server.url(),), sha256=SHA256)
    path = download(remote, tmp_path, timeout=0.3, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == [("/file", None), ("/file", "bytes=50000-")]


def test_resume_from_existing_part_file(server: Server, tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(PAYLOAD[:100_000])

    path = download(RemoteFile(NAME, (server.url(),), sha256=SHA256), tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == [("/file", "bytes=100000-")]


def test_complete_part_file_answered_416_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(PAYLOAD)

    path = download(RemoteFile(NAME, (server.url(),), sha256=SHA256), tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == [("/file", f"bytes={len(PAYLOAD)}-"), ("/file", None)]


def test_server_ignoring_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    server.state.ignore_range = True
    (tmp_path / f"{NAME}.part").write_bytes(b"\x00" * 1000)

    path = download(RemoteFile(NAME, (server.url(),), sha256=SHA256), tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == [("/file", "bytes=1000-")]


def test_checksum_mismatch_leaves_nothing(server: Server, tmp_path: Path) -> None:
    wrong = "0" * 64
    remote = RemoteFile(NAME, (server.url(),), sha256=wrong)

    with pytest.raises(ChecksumError) as info:
        download(remote, tmp_path, progress=False)

    message = str(info.value)
    assert NAME in message
    assert "sha256" in message
    assert wrong in message
    assert SHA256 in message
    assert list(tmp_path.iterdir()) == []


def test_http_500_is_retried_then_fails(server: Server, tmp_path: Path) -> None:
    server.state.status = 500
    remote = RemoteFile(NAME, (server.url(),), sha256=SHA256)

    with pytest.raises(DownloadError) as info:
        download(remote, tmp_path, retries=2, progress=False)

    assert len(server.state.requests) == 3  # the first try and 2 retries
    message = str(info.value)
    assert NAME in message
    assert server.url() in message
    assert "HTTP 500" in message
    assert "advlab data import" not in message  # the network is there, the server is not
    assert not (tmp_path / NAME).exists()


def test_404_falls_through_to_next_mirror(server: Server, tmp_path: Path) -> None:
    remote = RemoteFile(NAME, (server.url("/missing"), server.url()), sha256=SHA256)

    path = download(remote, tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    # A 404 is not retried: the mirror will not grow the file.
    assert [p for p, _ in server.state.requests] == ["/missing", "/file"]


def test_trust_on_first_use(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote = RemoteFile(NAME, (server.url(),))

    with caplog.at_level(logging.WARNING, logger="advlab.data.download"):
        path = download(remote, tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    checksums_file = tmp_path / "checksums.json"
    assert json.loads(checksums_file.read_text()) == {NAME: SHA256}
    assert any("no published checksum" in r.getMessage() for r in caplog.records)

    # The recorded digest is enough to reuse the file offline.
    assert download(remote, tmp_path, progress=False) == path
    assert len(server.state.requests) == 1

    path.unlink()
    server.state.payload = PAYLOAD[::-1]
    with pytest.raises(ChecksumError) as info:
        download(remote, tmp_path, progress=False)

    assert SHA256 in str(info.value)
    assert hashlib.sha256(PAYLOAD[::-1]).hexdigest() in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checksums.json"]
    assert json.loads(checksums_file.read_text()) == {NAME: SHA256}


def test_connection_refused_fails_fast_with_import_hint(tmp_path: Path) -> None:
    # A bound socket that never listens refuses connections, and no other test can take it.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/file"
        remote = RemoteFile(NAME, (url,), sha256=SHA256)

        start = time.monotonic()
        with pytest.raises(DownloadError) as info:
            download(remote, tmp_path, timeout=2.0, progress=False, dataset="cifar10")
        elapsed = time.monotonic() - start

    assert elapsed < 5.0
    message = str(info.value)
    assert "no network" in message
    assert "advlab data import cifar10 PATH" in message
    assert url in message
    assert list(tmp_path.iterdir()) == []


def test_progress_bar_goes_to_stderr_only_when_asked(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = RemoteFile(NAME, (server.url(),), sha256=SHA256)

    download(remote, tmp_path / "quiet", progress=False)
    quiet = capsys.readouterr()
    download(remote, tmp_path / "loud", progress=True)
    loud = capsys.readouterr()

    assert (quiet.out, quiet.err) == ("", "")
    assert loud.out == ""
    assert NAME in loud.err
    assert "/293k" in loud.err  # the total, 300_000 B in KiB (unit_divisor=1024)


def test_file_digest_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(PAYLOAD)

    assert file_digest(path) == SHA256
    assert file_digest(path, "md5") == MD5
    with pytest.raises(ConfigError, match="'nope'"):
        file_digest(path, "nope")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"filename": "../x", "urls": ("http://a",)}, "plain file name"),
        ({"filename": "x", "urls": ()}, "at least one URL"),
        ({"filename": "x", "urls": "http://a"}, "tuple of URLs"),
        ({"filename": "x", "urls": ("http://a",), "sha256": "abc"}, "64 hex digits"),
        ({"filename": "x", "urls": ("http://a",), "md5": "z" * 32}, "32 hex digits"),
    ],
)
def test_remote_file_rejects_bad_fields(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        RemoteFile(**kwargs)  # type: ignore[arg-type]
