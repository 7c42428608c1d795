"""The live loop: read frames, recognise faces, print a line per frame, optionally show,
record and profile; Ctrl-C ends it cleanly with a summary.

A line per frame reads ``frame 12  0.480 s  face x=120 y=80 w=96 h=96  happy 0.91`` (one
``face`` part per face; ``no face`` when none is found). With ``profile`` the stage latencies
follow (read, detect, crop, classify, total, in ms); the summary gives frames per second and
the mean latency of each stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advlab.emotion.faces import _cv2
from advlab.emotion.recognizer import EmotionRecognizer, FrameResult
from advlab.emotion.sources import Frame
from advlab.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class LiveSummary:
    """What a live run did: frames, faces, wall seconds, and mean stage latencies (ms)."""

    frames: int = 0
    faces: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    recorded: int = 0  # frames written to --record
    resized: int = 0  # of those, frames of another size, resized to the first frame's
    latency_ms: dict[str, float] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def format_line(frame: Frame, result: FrameResult, *, profile: bool = False) -> str:
    """The printed line of one frame."""
    parts = [f"frame {frame.index}", f"{frame.time:.3f} s"]
    if not result.faces:
        parts.append("no face")
    for face in result.faces:
        x, y, w, h = face.box
        parts.append(f"face x={x} y={y} w={w} h={h}  {face.label} {face.confidence:.2f}")
    if profile:
        parts.append(" ".join(f"{k} {v:.1f}" for k, v in result.timings.items()) + " ms")
    return "  ".join(parts)


def annotate(image: np.ndarray, result: FrameResult) -> np.ndarray:
    """A copy of the BGR frame with each face's box and label drawn."""
    cv2 = _cv2()
    out = image.copy()
    for face in result.faces:
        x, y, w, h = face.box
        cv2.rectangle(out, (x, y), (x + w, y + h), (0, 255, 0), 2)
        cv2.putText(
            out,
            f"{face.label} {face.confidence:.2f}",
            (x, max(12, y - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.6,
            (0, 255, 0),
            2,
        )
    return out


class _Recorder:
    def __init__(self, path: Path, fps: float) -> None:
        if path.suffix.lower() != ".avi":
            raise ConfigError(f"--record {path}: expected a .avi file (MJPG)")
        self.path, self.fps = path, fps
        self.writer: Any = None
        self.size: tuple[int, int] = (0, 0)  # (w, h) of the video: the first frame's
        self.written = self.resized = 0

    def write(self, image: np.ndarray) -> None:
        cv2 = _cv2()
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.size = (image.shape[1], image.shape[0])
            self.writer = cv2.VideoWriter(
                str(self.path), cv2.VideoWriter_fourcc(*"MJPG"), self.fps, self.size
            )
            if not self.writer.isOpened():
                raise ConfigError(f"--record {self.path}: OpenCV cannot write a video there")
        if (image.shape[1], image.shape[0]) != self.size:
            # OpenCV would drop a frame of another size without a word: fit it instead.
            if self.resized == 0:
                log.warning(
                    "--record %s: a frame of %dx%d in a %dx%d video; frames of another size are "
                    "resized to the first frame's",
                    self.path,
                    image.shape[1],
                    image.shape[0],
                    *self.size,
                )
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
            self.resized += 1
        self.writer.write(image)
        self.written += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


def run_live(
    frames: Iterator[Frame],
    recognizer: EmotionRecognizer,
    *,
    emit: Callable[[str], None] = print,
    profile: bool = False,
    show: bool = False,
    record: Path | None = None,
    record_fps: float = 25.0,
    max_frames: int | None = None,
    warm_up: bool = True,
) -> LiveSummary:
    """Recognise emotions frame by frame until the source ends, `max_frames` frames are done,
    or Ctrl-C; returns the summary (also after Ctrl-C). With `warm_up` the network runs once
    on blank crops before the first frame (`EmotionRecognizer.warm_up`), outside the timing."""
    cv2 = _cv2()
    if warm_up:
        recognizer.warm_up()
    summary = LiveSummary()
    totals: dict[str, float] = {}
    recorder = _Recorder(record, record_fps) if record is not None else None
    window = show
    start = time.perf_counter()
    try:
        t_read = time.perf_counter()
        for frame in frames:
            read_ms = 1000 * (time.perf_counter() - t_read)
            result = recognizer.process(frame.image)
            result.timings["read"] = read_ms
            result.timings["total"] = sum(result.timings.values())
            emit(format_line(frame, result, profile=profile))
            for k, v in result.timings.items():
                totals[k] = totals.get(k, 0.0) + v
            summary.frames += 1
            summary.faces += len(result.faces)
            if recorder is not None or window:
                drawn = annotate(frame.image, result)
                if recorder is not None:
                    recorder.write(drawn)
                if window:
                    try:
                        cv2.imshow("advlab emotion", drawn)
                        if cv2.waitKey(1) & 0xFF == ord("q"):
                            break
                    except cv2.error:
                        log.warning("--show: no display available here; continuing without it")
                        window = False
            if max_frames is not None and summary.frames >= max_frames:
                break
            t_read = time.perf_counter()
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        summary.seconds = time.perf_counter() - start
        if recorder is not None:
            recorder.close()
            summary.recorded, summary.resized = recorder.written, recorder.resized
        if show and window:
            cv2.destroyAllWindows()
    summary.latency_ms = {k: v / max(summary.frames, 1) for k, v in totals.items()}
    return summary


__all__ = ["LiveSummary", "annotate", "format_line", "run_live"]
