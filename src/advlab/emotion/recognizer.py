"""Every face of a frame classified in one batched forward pass, with optional smoothing.

`EmotionRecognizer` detects faces, crops each box, converts it to the network's input (grayscale
48 x 48 in [0, 1] for a FER2013 model) and classifies all faces of the frame in one call. With
``smooth=k`` the probabilities of a face are averaged over its last `k` frames: faces are
followed from frame to frame by box overlap (IoU), so two people keep their own histories.
Per-stage latencies (detect, crop, classify) are kept for ``--profile``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from advlab.emotion.faces import _cv2
from advlab.errors import ConfigError
from advlab.models.wrapper import eval_mode

Detector = Callable[[np.ndarray], np.ndarray]  # BGR frame -> (K, 4) int boxes x, y, w, h


@dataclass(frozen=True)
class FaceResult:
    """One face: its box (x, y, w, h), label, confidence and the class probabilities."""

    box: tuple[int, int, int, int]
    label: str
    confidence: float
    probabilities: tuple[float, ...]


@dataclass(frozen=True)
class FrameResult:
    """The faces found in a frame and how long each stage took, in milliseconds."""

    faces: list[FaceResult]
    timings: dict[str, float] = field(default_factory=dict)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of `a` (K, 4) with every box of `b` (L, 4)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum((a[:, 0] + a[:, 2])[:, None], (b[:, 0] + b[:, 2])[None, :])
    y2 = np.minimum((a[:, 1] + a[:, 3])[:, None], (b[:, 1] + b[:, 3])[None, :])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def crop_faces(
    frame: np.ndarray, boxes: np.ndarray, size: int = 48, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Grayscale crops of `boxes` (x, y, w, h) resized to size x size, all in one
    `roi_align` call (each output pixel averages the frame pixels under it): (K, 1, size,
    size) float in [0, 1]. Parts of a box outside the frame read as black."""
    from torchvision.ops import roi_align

    cv2 = _cv2()
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    image = torch.from_numpy(np.ascontiguousarray(gray)).to(device).float().div_(255.0)
    if len(boxes) == 0:
        return image.new_zeros((0, 1, size, size))
    b = torch.as_tensor(boxes, dtype=torch.float32, device=image.device)
    rois = torch.cat([b.new_zeros(len(b), 1), b[:, :2], b[:, :2] + b[:, 2:]], dim=1)
    return roi_align(image[None, None], rois, output_size=size, sampling_ratio=-1, aligned=True)


class EmotionRecognizer:
    """Detect, crop and classify the faces of frames.

    Args:
        model: Maps (K, 1, size, size) grayscale in [0, 1] to (K, C) logits.
        classes: The C class names.
        detector: A BGR frame -> (K, 4) boxes callable (`HaarFaceDetector`, or a stub).
        size: The network's input side.
        smooth: Average each face's probabilities over its last `smooth` frames (1: off).
        device: Where the network runs.
    """

    def __init__(
        self,
        model: nn.Module,
        classes: Sequence[str],
        detector: Detector,
        *,
        size: int = 48,
        smooth: int = 1,
        device: str = "cpu",
    ) -> None:
        if smooth < 1:
            raise ConfigError(f"smooth: expected a number of frames >= 1, found {smooth}")
        self.model = model.to(device).eval()
        self.classes = tuple(classes)
        self.detector, self.size, self.smooth = detector, size, smooth
        self.device = torch.device(device)
        self._tracks: list[tuple[np.ndarray, deque[np.ndarray]]] = []

    def classify(self, faces: torch.Tensor) -> np.ndarray:
        """Class probabilities (K, C) for crops (K, 1, size, size) in [0, 1], one batch."""
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        side, k = self.size, len(self.classes)
        expected = f"a network that maps (K, 1, {side}, {side}) grey faces to (K, {k}) logits"
        with eval_mode(self.model), torch.inference_mode():
            try:
                logits = self.model(faces.to(self.device))
            except RuntimeError as exc:  # e.g. a colour model, or one for another image size
                raise ConfigError(f"model: expected {expected}; it fails on them ({exc})") from None
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(faces), k):
            found = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            raise ConfigError(f"model: expected {expected}, found {found} for K = {len(faces)}")
        return logits.softmax(dim=1).cpu().numpy()

    def warm_up(self, faces: int = 4) -> None:
        """Run the network once on 1..`faces` blank crops, outside any timing (and so check,
        before the first frame, that it takes grey faces and gives one logit per class).

        The first forward pass of each batch size allocates and picks kernels (on 2 CPU cores
        the first frame took several times a steady one); doing that before the first frame
        keeps it out of the frame rate. Leaves no state behind (smoothing tracks untouched).
        """
        blank = torch.zeros(faces, 1, self.size, self.size, device=self.device)
        for k in range(1, faces + 1):
            self.classify(blank[:k])

    def _smoothed(self, boxes: np.ndarray, probs: np.ndarray) -> np.ndarray:
        if self.smooth == 1:
            return probs
        old = np.array([b for b, _ in self._tracks]).reshape(-1, 4)
        overlap = iou(boxes, old) if len(old) and len(boxes) else np.zeros((len(boxes), 0))
        tracks: list[tuple[np.ndarray, deque[np.ndarray]]] = []
        used: set[int] = set()
        out = np.empty_like(probs)
        for k in range(len(boxes)):
            j = int(np.argmax(overlap[k])) if overlap.shape[1] else -1
            if j >= 0 and overlap[k, j] > 0.3 and j not in used:
                used.add(j)
                history = self._tracks[j][1]
            else:
                history = deque(maxlen=self.smooth)
            history.append(probs[k])
            out[k] = np.mean(history, axis=0)
            tracks.append((boxes[k], history))
        self._tracks = tracks
        return out

    def process(self, frame: np.ndarray) -> FrameResult:
        """The faces of one BGR frame with their labels, and the stage latencies (ms)."""
        t0 = time.perf_counter()
        boxes = np.asarray(self.detector(frame), dtype=np.int64).reshape(-1, 4)
        t1 = time.perf_counter()
        crops = crop_faces(frame, boxes, self.size, self.device)
        t2 = time.perf_counter()
        probs = self._smoothed(boxes, self.classify(crops))
        t3 = time.perf_counter()
        faces = [
            FaceResult(
                tuple(int(v) for v in box),  # type: ignore[arg-type]
                self.classes[int(p.argmax())],
                float(p.max()),
                tuple(float(v) for v in p),
            )
            for box, p in zip(boxes, probs, strict=True)
        ]
        ms = {"detect": t1 - t0, "crop": t2 - t1, "classify": t3 - t2}
        return FrameResult(faces, {k: 1000 * v for k, v in ms.items()})


__all__ = ["EmotionRecognizer", "FaceResult", "FrameResult", "crop_faces", "iou"]
