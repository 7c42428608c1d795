"""Export to pt / ONNX / Keras H5: each file gives the stored model's logits back.

Oracles: the PyTorch model itself (the stored checkpoint), Keras 3 (torch backend) loading the
.h5 file, and onnxruntime running the .onnx file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from advlab.errors import ConfigError, RunError
from advlab.models import ModelWrapper
from advlab.train import TrainConfig
from advlab.train import store as model_store
from advlab.train.checkpoint import load_checkpoint, save_checkpoint
from advlab.train.export import (
    FORMATS,
    ONNX_OPSET,
    default_export_path,
    export_model,
    import_h5,
)
from advlab.train.store import ModelRecipe, load_model, train_and_store

DATA = "mnist-sample"  # 28x28: every h5 architecture fits (digits' 8x8 is too small for some)
# Stored untrained (the data still sets the wrapper's mean/std), except the BatchNorm model,
# trained one epoch so that its running statistics are not the initial zeros and ones.
UNTRAINED = TrainConfig(epochs=0)
TRAIN = TrainConfig(epochs=1, batch_size=128, lr=0.05)
RECIPES = {
    "mlp": ModelRecipe("mlp", DATA, {"depth": 1, "width": 16}, UNTRAINED),
    "small_cnn": ModelRecipe("small_cnn", DATA, {"width": 4}, UNTRAINED),
    "mnist_cnn": ModelRecipe("mnist_cnn", DATA, {}, UNTRAINED),
    "cifar_cnn": ModelRecipe("cifar_cnn", DATA, {"width": 4}, TRAIN),
    "lenet5": ModelRecipe("lenet5", DATA, {}, UNTRAINED),
    "lenet5_lecun": ModelRecipe(
        "lenet5", DATA, {"activation_name": "lecun", "pooling": "max"}, UNTRAINED
    ),
}
ATOL = 1e-4
# Keras' torch backend converts with np.array(tensor), which numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Each recipe stored in a fresh cache."""
    cache = tmp_path_factory.mktemp("cache")
    # Fresh models, but the session's decoded arrays (see conftest): no second decode.
    arrays = Path(os.environ["ADVLAB_CACHE_DIR"]) / "arrays"
    arrays.mkdir(parents=True, exist_ok=True)
    (cache / "arrays").symlink_to(arrays, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVLAB_CACHE_DIR", str(cache))
        yield {key: train_and_store(recipe) for key, recipe in RECIPES.items()}


@pytest.fixture(scope="module")
def pixels() -> torch.Tensor:
    from advlab.data import load_dataset

    x, _ = load_dataset(DATA, "test").tensors()
    return x[:64]  # (64, 1, 28, 28) in [0, 1]


def _logits(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(x).numpy()


def _keras() -> Any:
    os.environ["KERAS_BACKEND"] = "torch"
    return pytest.importorskip("keras")


@pytest.mark.parametrize("key", list(RECIPES))
def test_h5_loads_in_keras_and_reads_back(
    key: str, stored: dict[str, Path], pixels: torch.Tensor, tmp_path: Path
) -> None:
    keras = _keras()
    expected = _logits(load_model(stored[key]), pixels)
    out = export_model(stored[key], tmp_path / f"{key}.h5", format="h5")
    assert out == tmp_path / f"{key}.h5" and out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left

    net = keras.models.load_model(out)
    found = np.asarray(net.predict(pixels.permute(0, 2, 3, 1).numpy(), verbose=0))  # NHWC
    np.testing.assert_allclose(found, expected, rtol=0, atol=ATOL)
    assert (found.argmax(1) == expected.argmax(1)).all()

    back = import_h5(out)
    assert isinstance(back, ModelWrapper)
    np.testing.assert_array_equal(_logits(back, pixels), expected)


@pytest.mark.parametrize("key", ["mlp", "mnist_cnn", "cifar_cnn"])
def test_onnx_matches_onnxruntime(
    key: str, stored: dict[str, Path], pixels: torch.Tensor, tmp_path: Path
) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    expected = _logits(load_model(stored[key]), pixels)
    out = export_model(stored[key], tmp_path / "model.onnx", format="onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # weights inside
    proto = onnx.load(str(out))
    assert {o.domain: o.version for o in proto.opset_import}[""] == ONNX_OPSET
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (found,) = session.run(["logits"], {"pixels": pixels.numpy()})
    np.testing.assert_allclose(found, expected, rtol=0, atol=ATOL)
    (one,) = session.run(["logits"], {"pixels": pixels[:1].numpy()})  # the batch is dynamic
    np.testing.assert_allclose(one, expected[:1], rtol=0, atol=ATOL)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["advlab"])
    assert meta["model"] == RECIPES[key].model and meta["input"]["shape"] == [1, 28, 28]


def test_pt_round_trip_is_exact(
    stored: dict[str, Path], pixels: torch.Tensor, tmp_path: Path
) -> None:
    out = export_model(stored["cifar_cnn"], tmp_path / "copy.pt", format="pt")
    original, copy = load_model(stored["cifar_cnn"]), load_model(out)
    for a, b in zip(original.state_dict().values(), copy.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(_logits(copy, pixels), _logits(original, pixels))
    state = load_checkpoint(out)
    assert state["export"]["format"] == "pt" and state["model"]["name"] == "cifar_cnn"


def test_reads_a_model_written_by_keras(pixels: torch.Tensor, tmp_path: Path) -> None:
    """The Keras "Simple MNIST convnet" as seed 001's users build it: fused relu, softmax."""
    keras = _keras()
    layers = keras.layers
    net = keras.Sequential(
        [
            keras.Input(shape=(28, 28, 1)),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
            layers.MaxPooling2D(pool_size=(2, 2)),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(10, activation="softmax"),
        ]
    )
    path = tmp_path / "keras_mnist.h5"
    net.save(path)
    model = import_h5(path, "mnist_cnn")
    dropout = model.inner.get_submodule("dropout")
    assert model.mean is None and isinstance(dropout, torch.nn.Dropout) and dropout.p == 0.3
    probs = torch.softmax(torch.from_numpy(_logits(model, pixels)), dim=1).numpy()
    keras_probs = np.asarray(net.predict(pixels.permute(0, 2, 3, 1).numpy(), verbose=0))
    np.testing.assert_allclose(probs, keras_probs, rtol=0, atol=1e-5)
    with pytest.raises(ConfigError, match="model_name"):
        import_h5(path)


def test_import_refuses_another_architecture(stored: dict[str, Path], tmp_path: Path) -> None:
    out = export_model(stored["mnist_cnn"], tmp_path / "m.h5", format="h5")
    with pytest.raises(RunError, match=r"do not match lenet5 .* expected Conv2D"):
        import_h5(out, "lenet5")
    with pytest.raises(RunError, match="not a readable HDF5 file"):
        (tmp_path / "junk.h5").write_bytes(b"not hdf5")
        import_h5(tmp_path / "junk.h5", "mnist_cnn")


def test_resnet18_to_h5_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path / "cache"))
    # Stored untrained, in the store's layout: training needs 3-channel data, none is embedded.
    recipe = ModelRecipe("resnet18", "cifar10", {"stem": "cifar"}, TrainConfig(epochs=0))
    model = model_store.build(recipe, (3, 32, 32), 10, None, None)
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    checkpoint = save_checkpoint(
        recipe.folder() / "model.pt",
        {
            "format": model_store.STORE_FORMAT,
            "state_dict": weights,
            "weights_sha256": model_store.weights_sha256(weights),
            "model": {"name": "resnet18", "config": recipe.model_config},
            "input": {"shape": [3, 32, 32], "num_classes": 10},
            "wrapper": {"mean": None, "std": None, "bounds": [0.0, 1.0]},
            "dataset": "cifar10",
        },
    )
    out = tmp_path / "out"
    out.mkdir()
    msg = r"Keras export does not support resnet18 \(skip connections\); use onnx or pt"
    with pytest.raises(ConfigError, match=msg):
        export_model(checkpoint, out / "resnet.h5", format="h5")
    assert list(out.iterdir()) == []  # nothing half-written


def test_bad_arguments(stored: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"format: expected one of pt, onnx, h5, found 'keras'"):
        export_model(stored["mlp"], tmp_path / "m.keras", format="keras")
    assert FORMATS == ("pt", "onnx", "h5")
    with pytest.raises(ConfigError, match=r"\.h5 or \.hdf5"):
        export_model(stored["mlp"], tmp_path / "m.keras", format="h5")
    with pytest.raises(RunError, match="no checkpoint there"):
        export_model(tmp_path / "missing.pt", tmp_path / "m.onnx", format="onnx")
    broken = tmp_path / "broken.pt"
    good = stored["mlp"].read_bytes()
    broken.write_bytes(good[: len(good) // 2])
    with pytest.raises(RunError, match="not a readable checkpoint"):
        export_model(broken, tmp_path / "m.h5", format="h5")
    assert not (tmp_path / "m.h5").exists()
    assert default_export_path(stored["mlp"], "h5") == stored["mlp"].with_name("model.h5")
    assert default_export_path(stored["mlp"], "pt").name == "model.export.pt"
    # A folder as `out`: the file is named after the checkpoint's folder.
    written = export_model(stored["mlp"], tmp_path, format="pt")
    assert written == tmp_path / f"{stored['mlp'].parent.name}.pt" and written.is_file()
