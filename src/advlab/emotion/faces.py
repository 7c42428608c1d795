"""Face detection with OpenCV's Haar cascade (the frontal-face model that ships in the
opencv-python-headless 4.x wheels; 5.x wheels no longer carry it, hence the pin).

Detection runs on a downscaled grayscale copy of the frame (`scale`, 0.5 by default: a
640 x 480 frame is searched at 320 x 240, several times faster) and the boxes are scaled back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from advlab.errors import ConfigError


def _cv2():  # type: ignore[no-untyped-def]
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a dependency
        raise ConfigError(
            "OpenCV is missing: pip install 'opencv-python-headless>=4.8,<5'"
        ) from exc
    return cv2


class HaarFaceDetector:
    """Frontal faces in a BGR or grayscale frame, as (K, 4) int boxes ``x, y, w, h``.

    Args:
        cascade: The cascade file (default: OpenCV's ``haarcascade_frontalface_default.xml``).
        scale: Factor the frame is resized by before the search (1: full size).
        scale_factor, min_neighbors: `detectMultiScale`'s settings.
        min_size: Smallest face side searched, in pixels of the original frame.
    """

    def __init__(
        self,
        cascade: str | Path | None = None,
        *,
        scale: float = 0.5,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 40,
    ) -> None:
        cv2 = _cv2()
        if cascade is None:
            folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
            if folder is None or not hasattr(cv2, "CascadeClassifier"):
                raise ConfigError(
                    f"OpenCV {cv2.__version__} ships no Haar cascades or CascadeClassifier "
                    "(the 5.x wheels dropped them): pip install 'opencv-python-headless>=4.8,<5'"
                )
            cascade = Path(folder) / "haarcascade_frontalface_default.xml"
        path = Path(cascade)
        if not path.is_file():
            raise ConfigError(f"cascade: {path} does not exist; expected an OpenCV Haar cascade")
        if not 0 < scale <= 1:
            raise ConfigError(f"scale: expected a factor in (0, 1], found {scale!r}")
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise ConfigError(f"cascade: {path} is not a readable OpenCV cascade file")
        self.scale, self.scale_factor = scale, scale_factor
        self.min_neighbors, self.min_size = min_neighbors, min_size

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        small = gray
        if self.scale != 1:
            small = cv2.resize(
                gray, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA
            )
        side = max(8, round(self.min_size * self.scale))
        boxes = self.classifier.detectMultiScale(
            small,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
        )
        if len(boxes) == 0:
            return np.zeros((0, 4), dtype=np.int64)
        return np.round(np.asarray(boxes, dtype=np.float64) / self.scale).astype(np.int64)


__all__ = ["HaarFaceDetector"]
