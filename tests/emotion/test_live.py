"""Live emotion recognition without a camera: a synthetic clip of real FER2013 faces at known
boxes, the detector on its own, and, with the detector stubbed to those boxes, printed labels
equal to the model's offline predictions on the same faces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advlab.data import load_dataset
from advlab.emotion import EmotionRecognizer, Frame, HaarFaceDetector, open_source
from advlab.emotion.clip import ClipSpec, make_clip, manifest_path
from advlab.emotion.live import run_live
from advlab.emotion.recognizer import iou
from advlab.errors import ConfigError, SourceError
from advlab.models import ModelWrapper, create_model
from conftest import require_data

pytestmark = pytest.mark.xdist_group("fer2013")  # FER2013 is decoded once, in one worker

LINE = re.compile(r"face x=(\d+) y=(\d+) w=(\d+) h=(\d+)  (\w+) ([\d.]+)")


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    require_data("fer2013")
    test = load_dataset("fer2013", "test")
    pick = np.arange(0, 3589, 450)[:6]
    return np.asarray(test.images)[pick][..., 0], np.asarray(test.labels)[pick], test.classes


@pytest.fixture(scope="module")
def clip(
    faces: tuple[np.ndarray, np.ndarray, tuple[str, ...]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    images, labels, classes = faces
    folder = tmp_path_factory.mktemp("clip") / "frames"
    return make_clip(folder, images[:2], labels[:2], list(classes), ClipSpec(frames=12, faces=2))


def _model() -> ModelWrapper:
    torch.manual_seed(0)
    return ModelWrapper(create_model("cifar_cnn", in_channels=1, num_classes=7, width=8)).eval()


def test_clip_is_declared_synthetic_and_the_detector_finds_its_faces(clip: Path) -> None:
    manifest = json.loads(manifest_path(clip).read_text())
    assert manifest["synthetic"] is True and "synthetic" in manifest["note"]
    assert len(manifest["frames"]) == 12 == len(list(clip.glob("frame_*.png")))
    detector = HaarFaceDetector()
    found = total = 0
    for frame in open_source(clip):
        truth = np.array([f["box"] for f in manifest["frames"][frame.index]])
        boxes = detector(frame.image)
        total += len(truth)
        if len(boxes):
            found += int((iou(truth, boxes).max(axis=1) > 0.5).sum())
    assert total == 24 and found >= 22  # the placed faces, at their boxes


def test_printed_labels_equal_offline_predictions(
    clip: Path, faces: tuple[np.ndarray, np.ndarray, tuple[str, ...]]
) -> None:
    images, _, classes = faces
    manifest = json.loads(manifest_path(clip).read_text())
    calls = iter(range(10**6))

    def stub(_: np.ndarray) -> np.ndarray:  # the manifest's boxes, frame by frame
        return np.array([f["box"] for f in manifest["frames"][next(calls)]])

    model = _model()
    with torch.no_grad():
        offline = model(torch.from_numpy(images[:2]).float().div(255).unsqueeze(1)).softmax(1)
    lines: list[str] = []
    summary = run_live(
        open_source(clip), EmotionRecognizer(model, classes, stub), emit=lines.append
    )
    assert summary.frames == 12 and summary.faces == 24 and len(lines) == 12
    for t, line in enumerate(lines):
        parsed = LINE.findall(line)
        assert [[int(v) for v in p[:4]] for p in parsed] == [
            f["box"] for f in manifest["frames"][t]
        ]
        for k, p in enumerate(parsed):  # face k of the clip is image k
            assert p[4] == classes[int(offline[k].argmax())]
            assert float(p[5]) == pytest.approx(float(offline[k].max()), abs=0.006)


class _Scripted(nn.Module):
    """Returns the next rows of a fixed logit sequence, ignoring its input."""

    def __init__(self, logits: list[list[float]]) -> None:
        super().__init__()
        self.rows = iter(torch.tensor(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([next(self.rows) for _ in range(len(x))])


def _frames(n: int) -> Iterator[Frame]:
    for i in range(n):
        yield Frame(i, i / 25, np.zeros((120, 200, 3), dtype=np.uint8))


def test_smoothing_follows_each_face() -> None:
    a, b = [4.0, 0, 0, 0, 0, 0, 0], [0, 4.0, 0, 0, 0, 0, 0]
    classes = ("a", "b", "c", "d", "e", "f", "g")
    one = np.array([[10, 10, 48, 48]])
    sequence = [a, a, b, a, a]  # one odd frame
    for smooth, expected in ((1, ["a", "a", "b", "a", "a"]), (3, ["a"] * 5)):
        rec = EmotionRecognizer(_Scripted(sequence), classes, lambda _: one, smooth=smooth)
        labels = [rec.process(f.image).faces[0].label for f in _frames(5)]
        assert labels == expected
    two = np.array([[10, 10, 48, 48], [130, 10, 48, 48]])  # far apart: two histories
    rec = EmotionRecognizer(_Scripted([a, b] * 4), classes, lambda _: two, smooth=4)
    for f in _frames(4):
        assert [face.label for face in rec.process(f.image).faces] == ["a", "b"]
    with pytest.raises(ConfigError, match=r"^smooth: expected a number of frames >= 1"):
        EmotionRecognizer(_Scripted([]), classes, lambda _: one, smooth=0)


def test_warm_up_runs_before_the_first_frame_and_changes_nothing() -> None:
    calls: list[int] = []

    class Counting(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(len(x))
            return torch.arange(7.0).repeat(len(x), 1)

    one = np.array([[10, 10, 48, 48]])
    rec = EmotionRecognizer(Counting(), tuple("abcdefg"), lambda _: one, smooth=3)
    lines: list[str] = []
    run_live(_frames(2), rec, emit=lines.append)
    assert calls == [1, 2, 3, 4, 1, 1]  # blank batches of 1..4 faces, then one per frame
    assert len(rec._tracks) == 1 and len(rec._tracks[0][1]) == 2  # only the real frames
    calls.clear()
    rec = EmotionRecognizer(Counting(), tuple("abcdefg"), lambda _: one, smooth=3)
    cold: list[str] = []
    run_live(_frames(2), rec, emit=cold.append, warm_up=False)
    assert calls == [1, 1]
    assert cold == lines and "face x=10 y=10 w=48 h=48  g 0.63" in lines[0]


def test_ctrl_c_no_face_and_recording(tmp_path: Path) -> None:
    def interrupted() -> Iterator[Frame]:
        yield from _frames(3)
        raise KeyboardInterrupt

    rec = EmotionRecognizer(_model(), tuple("abcdefg"), lambda _: np.zeros((0, 4)))
    lines: list[str] = []
    out = tmp_path / "annotated.avi"
    summary = run_live(interrupted(), rec, emit=lines.append, record=out, profile=True)
    assert summary.interrupted and summary.frames == 3 and summary.faces == 0
    assert all("no face" in line and "classify" in line for line in lines)
    assert [f.index for f in open_source(out)] == [0, 1, 2]  # the recording is a video
    with pytest.raises(ConfigError, match=r"^--record .*expected a \.avi file"):
        run_live(_frames(1), rec, record=tmp_path / "x.mp4")


def test_bad_sources_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder, and not a camera index"):
        open_source(tmp_path / "missing.avi")
    (tmp_path / "broken.avi").write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="not a video OpenCV can read"):
        open_source(tmp_path / "broken.avi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="a folder with no images"):
        open_source(tmp_path / "empty")
    with pytest.raises(SourceError, match="no camera 7 could be opened"):
        open_source("7")


def test_cli_make_clip_and_live(clip: Path, tmp_path: Path) -> None:
    """`advlab emotion make-clip` writes a declared-synthetic clip; `advlab emotion live` runs a
    stored grayscale model on it with the real detector and prints a line per frame."""
    from typer.testing import CliRunner

    from advlab.cli import app
    from advlab.train.store import ModelRecipe, save_model

    runner = CliRunner()
    out = tmp_path / "clip.avi"
    made = runner.invoke(app, ["emotion", "make-clip", str(out), "--frames", "5"])
    assert made.exit_code == 0, made.output
    assert "synthetic clip" in made.output
    assert json.loads(manifest_path(out).read_text())["synthetic"] is True
    recipe = ModelRecipe("cifar_cnn", "fer2013", {"in_channels": 1, "num_classes": 7, "width": 8})
    path = save_model(tmp_path / "model.pt", _model(), recipe, (1, 48, 48), 7, {})
    result = runner.invoke(
        app,
        [
            "emotion",
            "live",
            "--model",
            str(path),
            "--source",
            str(out),
            "--max-frames",
            "4",
            "--profile",
            "--smooth",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if ln.startswith("frame ")]
    assert len(lines) == 4 and all(len(LINE.findall(ln)) == 2 for ln in lines)
    assert "4 frames, 8 faces" in result.output and "detect" in result.output


def test_recording_fits_frames_of_another_size_and_counts_them(tmp_path: Path) -> None:
    def mixed() -> Iterator[Frame]:
        for i, (h, w) in enumerate([(120, 200), (90, 160), (120, 200)]):
            yield Frame(i, i / 25, np.full((h, w, 3), 40 * i, dtype=np.uint8))

    rec = EmotionRecognizer(_model(), tuple("abcdefg"), lambda _: np.zeros((0, 4)))
    out = tmp_path / "mixed.avi"
    summary = run_live(mixed(), rec, emit=lambda _: None, record=out, warm_up=False)
    assert (summary.recorded, summary.resized) == (3, 1)
    recorded = list(open_source(out))
    assert len(recorded) == 3 and all(f.image.shape == (120, 200, 3) for f in recorded)


def test_a_video_that_ends_early_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = EmotionRecognizer(_model(), tuple("abcdefg"), lambda _: np.zeros((0, 4)))
    whole = tmp_path / "whole.avi"
    run_live(_frames(20), rec, emit=lambda _: None, record=whole, warm_up=False)
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 2 // 3])  # the header still announces 20 frames
    with caplog.at_level("WARNING", logger="advlab.emotion.sources"):
        frames = list(open_source(cut))
    assert 0 < len(frames) < 20
    assert f"ended after {len(frames)} of the 20 frames its header announces" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="advlab.emotion.sources"):
        assert len(list(open_source(whole))) == 20
    assert "ended after" not in caplog.text


def test_a_model_that_does_not_fit_the_pipeline_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    one = np.array([[10, 10, 48, 48]])
    colour = ModelWrapper(create_model("cifar_cnn", in_channels=3, num_classes=7, width=8))
    digits = ModelWrapper(create_model("cifar_cnn", in_channels=1, num_classes=10, width=8))
    for model, found in ((colour, "it fails on them"), (digits, "found (1, 10) for K = 1")):
        rec = EmotionRecognizer(model, tuple("abcdefg"), lambda _: one)
        with pytest.raises(
            ConfigError,
            match=r"^model: expected a network that maps \(K, 1, 48, "
            r"48\) grey faces to \(K, 7\) logits",
        ):
            rec.warm_up()
        with pytest.raises(ConfigError, match=re.escape(found)):
            run_live(_frames(1), rec, emit=lambda _: None)

    from typer.testing import CliRunner

    from advlab.cli import app
    from advlab.train.store import ModelRecipe, save_model

    recipe = ModelRecipe("cifar_cnn", "mnist", {"in_channels": 1, "num_classes": 10, "width": 8})
    path = save_model(tmp_path / "mnist.pt", digits, recipe, (1, 28, 28), 10, {})
    result = CliRunner().invoke(app, ["emotion", "live", "--model", str(path), "--source", "0"])
    assert result.exit_code != 0
    assert "expected a face-emotion classifier (trained on fer2013), found a model of mnist" in str(
        result.exception
    )
