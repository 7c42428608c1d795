"""The trainer learns, is seeded, and resumes from a checkpoint to the same result."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advlab.data import load_dataset
from advlab.errors import ConfigError, RunError
from advlab.models import ModelWrapper, create_model
from advlab.train import TrainConfig, evaluate, fit, load_checkpoint, save_checkpoint


def digits() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    return load_dataset("digits", "train").tensors(), load_dataset("digits", "test").tensors()


def model(seed: int = 0) -> ModelWrapper:
    torch.manual_seed(seed)
    return ModelWrapper(create_model("mlp", in_shape=(1, 8, 8), depth=1, width=32))


def test_fit_learns_digits() -> None:
    train, test = digits()
    net = model()
    hist = fit(net, train, TrainConfig(epochs=6, batch_size=32, lr=0.1), val=test)
    assert len(hist.train_loss) == 6 and hist.train_loss[-1] < hist.train_loss[0]
    _, acc = evaluate(net, *test)
    assert acc == hist.val_acc[-1]
    assert 0.90 < acc <= 1.0


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    train, _ = digits()
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.05)
    straight = model()
    fit(straight, train, cfg)
    ckpt = tmp_path / "train.pt"
    resumed = model()
    fit(resumed, train, TrainConfig(epochs=2, batch_size=64, lr=0.05), checkpoint=ckpt)
    assert load_checkpoint(ckpt)["epoch"] == 1
    fresh_process_model = model(seed=123)  # different init: everything must come from the file
    hist = fit(fresh_process_model, train, cfg, checkpoint=ckpt)
    assert len(hist.train_loss) == 4
    for a, b in zip(
        straight.state_dict().values(), fresh_process_model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_config_and_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="optimizer: expected sgd or adam"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ConfigError, match="lr > 0"):
        TrainConfig(lr=0)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(RunError, match="not a readable checkpoint"):
        load_checkpoint(bad)


def test_checkpoint_refuses_code(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("code ran",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(RunError, match="not a readable checkpoint"):
        load_checkpoint(path)
    ok = save_checkpoint(tmp_path / "ok.pt", {"w": torch.ones(2), "epoch": 3})
    assert load_checkpoint(ok)["epoch"] == 3


def test_resume_refuses_other_hyperparameters(tmp_path: Path) -> None:
    train, _ = digits()
    ckpt = tmp_path / "t.pt"
    fit(model(), train, TrainConfig(epochs=1, lr=0.05), checkpoint=ckpt)
    with pytest.raises(RunError, match=r"lr: saved 0\.05, now 0\.1"):
        fit(model(), train, TrainConfig(epochs=2, lr=0.1), checkpoint=ckpt)
    other = ModelWrapper(create_model("mlp", in_shape=(1, 8, 8), depth=2, width=16))
    with pytest.raises(RunError, match="does not fit this model"):
        fit(other, train, TrainConfig(epochs=2, lr=0.05), checkpoint=ckpt)


def test_resume_with_dropout_equals_uninterrupted(tmp_path: Path) -> None:
    from torch import nn

    train, _ = digits()

    def dropout_model() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5),
                             nn.Linear(32, 10))  # fmt: skip

    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05)
    torch.manual_seed(1)
    straight = dropout_model()
    fit(straight, train, cfg)
    ckpt = tmp_path / "d.pt"
    part = dropout_model()
    fit(part, train, TrainConfig(epochs=1, batch_size=64, lr=0.05), checkpoint=ckpt)
    torch.manual_seed(999)  # a new process would start from other random state
    resumed = dropout_model()
    fit(resumed, train, cfg, checkpoint=ckpt)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
