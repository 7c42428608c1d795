"""Emotion recognition on live video (seed 001, Exercise 3): frame sources, face detection,
batched classification of every face in a frame, temporal smoothing, and synthetic clips."""

from advlab.emotion.faces import HaarFaceDetector
from advlab.emotion.recognizer import EmotionRecognizer, FaceResult, FrameResult
from advlab.emotion.sources import Frame, open_source

__all__ = [
    "EmotionRecognizer",
    "FaceResult",
    "Frame",
    "FrameResult",
    "HaarFaceDetector",
    "open_source",
]
