"""Where frames come from: a camera index, a video file or a folder of images, one interface.

`open_source("0")` opens camera 0, `open_source("clip.avi")` a video, `open_source("faces/")`
the images of a folder in name order. Each yields `Frame`s (BGR uint8, H x W x 3). A source
that cannot be opened raises `SourceError` with what was tried; a camera that stops delivering
frames mid-stream is retried a few times and then ends the stream with a warning; an image that
cannot be read is skipped with a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advlab.emotion.faces import _cv2
from advlab.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class Frame:
    """One frame: its index in the stream, seconds since the stream started, BGR pixels."""

    index: int
    time: float
    image: np.ndarray


def _camera(index: int, retries: int) -> Iterator[Frame]:
    cv2 = _cv2()
    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise SourceError(
            f"--source {index}: no camera {index} could be opened (is one "
            "connected, and free?); a video file or an image folder works too"
        )
    start, i, failures = time.perf_counter(), 0, 0
    try:
        while True:
            ok, image = cap.read()
            if not ok or image is None:
                failures += 1
                if failures > retries:
                    log.warning("camera %d: no frame after %d tries; stopping", index, failures)
                    return
                time.sleep(0.05)
                continue
            failures = 0
            yield Frame(i, time.perf_counter() - start, image)
            i += 1
    finally:
        cap.release()


def _video(path: Path) -> Iterator[Frame]:
    cv2 = _cv2()
    cap = cv2.VideoCapture(str(path))
    ok, image = cap.read() if cap.isOpened() else (False, None)
    if not ok or image is None:
        cap.release()
        raise SourceError(f"--source {path}: not a video OpenCV can read (no frame decoded)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)  # from the header; 0 if unknown
    i = 0
    try:
        while ok and image is not None:
            yield Frame(i, i / fps if fps > 0 else float(i), image)
            i += 1
            ok, image = cap.read()
        if 0 < i < count:
            log.warning(
                "--source %s: the video ended after %d of the %d frames its header announces "
                "(a truncated or damaged file)",
                path,
                i,
                count,
            )
    finally:
        cap.release()


def _folder(path: Path) -> Iterator[Frame]:
    cv2 = _cv2()
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"--source {path}: a folder with no images ({', '.join(IMAGE_SUFFIXES)})")
    i = 0
    for file in files:
        image = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s: not a readable image; skipped", file)
            continue
        yield Frame(i, float(i), image)
        i += 1


def open_source(spec: str | int, *, retries: int = 10) -> Iterator[Frame]:
    """Frames from `spec`: a camera index (``0``), a video file or a folder of images.

    The source is opened (and its first frame read, for a video) before this returns, so a
    bad source raises `SourceError` here, not in the middle of a loop.
    """
    text = str(spec)
    if text.isdigit():
        frames = _camera(int(text), retries)
    else:
        path = Path(text)
        if not path.exists():
            raise SourceError(f"--source {text}: no such file or folder, and not a camera index")
        frames = _folder(path) if path.is_dir() else _video(path)
    first = next(frames, None)  # open now: errors surface before the caller's loop
    if first is None:
        raise SourceError(f"--source {text}: no frames")

    def stream() -> Iterator[Frame]:
        yield first
        yield from frames

    return stream()


__all__ = ["IMAGE_SUFFIXES", "Frame", "open_source"]
