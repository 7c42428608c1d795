"""The model store: train once, reload exactly, refuse corrupt or mismatched checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advlab.errors import RunError
from advlab.train import TrainConfig
from advlab.train import store as model_store
from advlab.train.checkpoint import load_checkpoint, save_checkpoint
from advlab.train.store import ModelRecipe, get_trained, load_model, stored_models, train_and_store

RECIPE = ModelRecipe("mlp", "digits", {"depth": 1, "width": 16}, TrainConfig(epochs=3, lr=0.1))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_train_store_reload(cache: Path) -> None:
    from advlab.data import load_dataset

    path = train_and_store(RECIPE)
    assert path == cache / "models" / f"mlp-digits-{RECIPE.key()}" / "model.pt"
    assert not (path.parent / "training.pt").exists()
    model = load_model(path)
    x, y = load_dataset("digits", "test").tensors()
    acc = float((model(x).argmax(1) == y).float().mean())
    saved = load_checkpoint(path)
    assert acc == pytest.approx(saved["metrics"]["test_accuracy"])
    assert 0.85 < acc <= 1.0
    assert saved["wrapper"]["mean"] is not None and len(saved["wrapper"]["mean"]) == 1
    (row,) = stored_models()
    assert row["model"] == "mlp" and row["dataset"] == "digits"
    assert row["accuracy"] == pytest.approx(acc)


def test_get_trained_reuses_the_store(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_trained(RECIPE)

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("trained again")

    monkeypatch.setattr(model_store, "fit", no_training)
    again = get_trained(RECIPE)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = ModelRecipe("mlp", "digits", {"depth": 1, "width": 16}, TrainConfig(epochs=1))
    assert other.folder() != RECIPE.folder()


def test_corrupt_and_mismatched_checkpoints(cache: Path) -> None:
    path = train_and_store(RECIPE)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(RunError, match="not a readable checkpoint"):
        load_model(path)
    path.write_bytes(good)
    state = load_checkpoint(path)
    original = state["state_dict"]["net.1.weight"].clone()
    state["state_dict"]["net.1.weight"] += 1.0
    save_checkpoint(path, state)
    with pytest.raises(RunError, match="sha256 differs"):
        load_model(path)
    state["state_dict"]["net.1.weight"] = original
    state["model"]["config"] = {"depth": 1, "width": 32}  # another architecture
    save_checkpoint(path, state)
    with pytest.raises(RunError, match="weights do not fit mlp"):
        load_model(path)
    state["model"]["config"] = {"depth": 1, "width": 16}
    state["input"]["num_classes"] = 7  # a wrong number of classes
    save_checkpoint(path, state)
    with pytest.raises(RunError, match="weights do not fit mlp"):
        load_model(path)
    save_checkpoint(path, {"hello": 1})
    with pytest.raises(RunError, match="not an advlab model checkpoint"):
        load_model(path)


def test_weights_hash_covers_batchnorm_counters() -> None:
    from advlab.models import create_model
    from advlab.train.store import weights_sha256

    net = create_model("cifar_cnn")
    state = net.state_dict()
    assert any(t.dim() == 0 for t in state.values())  # num_batches_tracked
    digest = weights_sha256(state)
    state[next(k for k, t in state.items() if t.dim() == 0)] += 1
    assert weights_sha256(state) != digest


def test_held_out_and_train_fraction(cache: Path) -> None:
    """A recipe can keep part of the evaluation split from epoch selection and train on part of
    the training split; both enter the key, and the recorded held-out accuracy is true."""
    import numpy as np

    from advlab.data import load_dataset
    from advlab.errors import ConfigError
    from advlab.train.store import evaluation_parts, stored_metrics, train_parts

    recipe = ModelRecipe(
        "mlp",
        "digits",
        {"depth": 1, "width": 16},
        TrainConfig(epochs=3, lr=0.1, early_stopping=3),
        held_out=0.4,
        train_fraction=0.6,
    )
    assert recipe.key() != RECIPE.key()
    assert (
        ModelRecipe(
            "mlp", "digits", {"depth": 1, "width": 16}, TrainConfig(epochs=3, lr=0.1), held_out=0.0
        ).key()
        == RECIPE.key()
    )
    model = get_trained(recipe)
    metrics = stored_metrics(recipe)
    train = load_dataset("digits", "train")
    fit_part, rest = train_parts(recipe, train.labels)
    assert metrics["n_train"] == len(fit_part)
    assert sorted(np.concatenate([fit_part, rest]).tolist()) == list(range(len(train.labels)))
    assert abs(len(fit_part) / len(train.labels) - 0.6) < 0.02
    for c in np.unique(train.labels):  # stratified: every class keeps about 60%
        share = np.isin(np.flatnonzero(train.labels == c), fit_part).mean()
        assert abs(share - 0.6) < 0.1
    selection, held = evaluation_parts(recipe)
    assert held is not None
    test = load_dataset("digits", "test")
    assert (metrics["n_selection"], metrics["n_held_out"]) == (len(selection), len(held))
    assert len(selection) + len(held) == len(test.labels)
    assert abs(len(held) / len(test.labels) - 0.4) < 0.02
    xh, yh = held.tensors()
    assert metrics["held_out_accuracy"] == pytest.approx(
        float((model(xh).argmax(1) == yh).float().mean())
    )
    xs, ys = selection.tensors()
    assert metrics["test_accuracy"] == pytest.approx(
        float((model(xs).argmax(1) == ys).float().mean())
    )
    # The validation loss fit saw is the selection part's: the best epoch's equals it.
    history = metrics["history"]
    assert metrics["test_loss"] == pytest.approx(history["val_loss"][history["best_epoch"]])
    with pytest.raises(ConfigError, match=r"^train_fraction: expected a share in \(0, 1\]"):
        ModelRecipe("mlp", "digits", train_fraction=1.5)
    with pytest.raises(RunError, match="is not in the store"):
        stored_metrics(RECIPE)
