"""Synthetic test clips: real FER2013 faces pasted at known boxes on a generated background.

No camera exists on the machines advlab is built on, so the live pipeline is tested and
benchmarked on such a clip. It is declared synthetic wherever it is used: its sidecar manifest
(``<clip>.json``) says so and lists, per frame, each face's box, its FER2013 image index and
label. Faces drift slowly across the frame so that boxes change from frame to frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advlab.emotion.faces import _cv2
from advlab.errors import ConfigError
from advlab.fileio import atomic_path, write_atomic


@dataclass(frozen=True)
class ClipSpec:
    """Frames, frame rate, frame size (width, height), faces per frame and their side."""

    frames: int = 100
    fps: float = 25.0
    width: int = 640
    height: int = 480
    faces: int = 2
    face_size: int = 144  # 3 x FER2013's 48: an exact integer upscaling
    seed: int = 0


def _background(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float32)
    base = np.stack(
        [60 + 80 * xx / spec.width, 90 + 60 * yy / spec.height, 140 - 50 * xx / spec.width], axis=-1
    )
    noise = rng.normal(0, 6, size=base.shape).astype(np.float32)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


FrameMeta = list[dict[str, Any]]


def _frames(
    spec: ClipSpec,
    faces: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    indices: np.ndarray | None,
) -> Iterator[tuple[np.ndarray, FrameMeta]]:
    cv2 = _cv2()
    side = spec.face_size
    slot = spec.width // spec.faces
    if slot < side + 20 or spec.height < side + 20:
        raise ConfigError(
            f"{spec.faces} faces of side {side} do not fit a {spec.width} x {spec.height} frame"
        )
    rng = np.random.default_rng(spec.seed)
    background = _background(spec, rng)
    h = faces.shape[1]
    # An integer upscaling repeats pixels exactly, so averaging the box back down to the
    # original size gives the original face (what the tests check predictions on).
    mode = cv2.INTER_NEAREST if side % h == 0 else cv2.INTER_CUBIC
    pasted = [
        cv2.cvtColor(
            cv2.resize(faces[k % len(faces)], (side, side), interpolation=mode), cv2.COLOR_GRAY2BGR
        )
        for k in range(spec.faces)
    ]
    phase = rng.uniform(0, 2 * np.pi, size=(spec.faces, 2))
    room_x, room_y = slot - side - 10, spec.height - side - 10
    for t in range(spec.frames):
        frame = background.copy()
        meta = []
        for k in range(spec.faces):
            x = k * slot + 5 + int(room_x * (0.5 + 0.5 * np.sin(0.05 * t + phase[k, 0])))
            y = 5 + int(room_y * (0.5 + 0.5 * np.sin(0.04 * t + phase[k, 1])))
            frame[y : y + side, x : x + side] = pasted[k]
            i = k % len(faces)
            meta.append(
                {
                    "box": [x, y, side, side],
                    "face": int(indices[i]) if indices is not None else i,
                    "label": classes[int(labels[i])],
                }
            )
        yield frame, meta


def make_clip(
    path: Path | str,
    faces: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    spec: ClipSpec = ClipSpec(),
    *,
    indices: np.ndarray | None = None,
) -> Path:
    """Write a clip of `spec.frames` frames showing `spec.faces` of the grayscale `faces`
    (N, H, W) uint8, and its manifest ``<path>.json``; returns `path`.

    `path` ending in ``.avi``: an MJPG video (what a camera-like stream looks like, lossy);
    any other `path`: a folder of lossless PNG frames (``frame_00000.png``, ...), which
    ``--source`` reads as well. Face k of the clip is ``faces[k % N]`` (labelled ``labels``,
    recorded under ``indices`` if given); its box drifts on a slow sinusoid inside its own
    vertical band of the frame, so faces never overlap.
    """
    cv2 = _cv2()
    path = Path(path)
    faces = np.asarray(faces)
    if faces.ndim != 3 or len(faces) == 0:
        raise ConfigError(f"faces: expected grayscale images (N, H, W), found {faces.shape}")
    frames_meta: list[list[dict[str, Any]]] = []
    frames = _frames(spec, faces, np.asarray(labels), classes, indices)
    if path.suffix.lower() == ".avi":
        with atomic_path(path) as tmp:  # the temporary name ends in .avi too
            writer = cv2.VideoWriter(
                str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), spec.fps, (spec.width, spec.height)
            )
            if not writer.isOpened():
                raise ConfigError(f"clip: OpenCV cannot write MJPG video to {path}")
            try:
                for frame, meta in frames:
                    writer.write(frame)
                    frames_meta.append(meta)
            finally:
                writer.release()
    elif path.suffix:
        raise ConfigError(f"clip: {path}: expected a .avi file or a folder name (no suffix)")
    else:
        path.mkdir(parents=True, exist_ok=True)
        for t, (frame, meta) in enumerate(frames):
            with atomic_path(path / f"frame_{t:05d}.png") as tmp:
                if not cv2.imwrite(str(tmp), frame):
                    raise ConfigError(f"clip: OpenCV cannot write {tmp}")
            frames_meta.append(meta)
    manifest = {
        "synthetic": True,
        "note": "synthetic clip: FER2013 faces pasted on a generated background",
        "fps": spec.fps,
        "size": [spec.width, spec.height],
        "frames": frames_meta,
    }
    write_atomic(manifest_path(path), json.dumps(manifest, indent=1) + "\n")
    return path


def manifest_path(clip: Path | str) -> Path:
    """Where `make_clip` writes the manifest of `clip`."""
    clip = Path(clip)
    return clip.with_suffix(".json") if clip.suffix else clip.parent / f"{clip.name}.json"


__all__ = ["ClipSpec", "make_clip", "manifest_path"]
