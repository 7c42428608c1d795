"""The trainer learns, is seeded, and resumes from a checkpoint to the same result."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from advlab.data import load_dataset
from advlab.errors import ConfigError, RunError
from advlab.models import ModelWrapper, create_model
from advlab.train import (
    History,
    TrainConfig,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
)


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
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10)
        )

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


# ----------------------------------------------------------------------------- extensions
# Schedules, label smoothing, early stopping, augmentation and their resume.


def lr_per_step(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    """The lr of every optimizer step under torch's own scheduler for `cfg`, on a dummy param."""
    from torch.optim import lr_scheduler as S

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr, momentum=cfg.momentum)
    total = cfg.epochs * steps_per_epoch
    per_step = cfg.schedule in ("cosine", "onecycle")
    sched = {
        "none": lambda: None,
        "step": lambda: S.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma),
        "exponential": lambda: S.ExponentialLR(opt, gamma=cfg.gamma),
        "cosine": lambda: S.CosineAnnealingLR(opt, T_max=total),
        "onecycle": lambda: S.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total, cycle_momentum=False
        ),
    }[cfg.schedule]()
    lrs = []
    for _ in range(cfg.epochs):
        for _ in range(steps_per_epoch):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_step and sched is not None:
                sched.step()
        if not per_step and sched is not None:
            sched.step()
    return lrs


@pytest.mark.parametrize(
    "schedule, extra",
    [
        ("none", {}),
        ("step", {"step_size": 2, "gamma": 0.5}),
        ("exponential", {"gamma": 0.9}),
        ("cosine", {}),
        ("onecycle", {}),
    ],
)
def test_schedule_matches_torch(schedule: str, extra: dict[str, float]) -> None:
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    train, _ = digits()
    cfg = TrainConfig(epochs=5, batch_size=256, lr=0.1, schedule=schedule, **extra)  # type: ignore[arg-type]
    seen: list[tuple[float, float]] = []  # (lr, momentum) at every optimizer step
    handle = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append(
            (opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"])
        )
    )
    try:
        hist = fit(model(), train, cfg)
    finally:
        handle.remove()
    steps = -(-len(train[0]) // cfg.batch_size)
    expected = lr_per_step(cfg, steps)
    assert [lr for lr, _ in seen] == expected  # exact
    assert hist.lr == expected[::steps]
    assert {m for _, m in seen} == {0.9}  # onecycle does not cycle the configured momentum
    if schedule != "none":
        assert len(set(expected)) > 1


def test_label_smoothing_first_step_loss() -> None:
    (x, y), _ = digits()
    trained = model()
    fit(trained, (x, y), TrainConfig(epochs=3, batch_size=64, lr=0.1))  # confident predictions
    losses = {}
    for smoothing in (0.0, 0.2):
        net = copy.deepcopy(trained)
        with torch.no_grad():
            want = F.cross_entropy(net(x), y, label_smoothing=smoothing)
        # One full-batch step: the epoch's training loss is the loss at the starting weights.
        cfg = TrainConfig(epochs=1, batch_size=len(x), label_smoothing=smoothing)
        losses[smoothing] = fit(net, (x, y), cfg).train_loss[0]
        assert losses[smoothing] == pytest.approx(float(want), rel=1e-6)
    assert losses[0.2] > losses[0.0] + 0.1


def test_early_stopping_restores_best_epoch() -> None:
    train, test = digits()
    patience, epochs = 2, 12
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def keep(epoch: int, _: History) -> None:
        snapshots[epoch] = {k: v.clone() for k, v in net.state_dict().items()}

    net = model()
    # lr 1.0 is far too high for this net: the validation loss bottoms out early, then rises.
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=1.0, early_stopping=patience)
    hist = fit(net, train, cfg, val=test, on_epoch=keep)
    best = hist.best_epoch
    assert best is not None
    assert best == min(range(len(hist.val_loss)), key=hist.val_loss.__getitem__)
    assert len(hist.val_loss) == best + patience + 1 < epochs  # stopped `patience` epochs later
    assert all(v >= hist.val_loss[best] for v in hist.val_loss[best + 1 :])
    assert sorted(snapshots) == list(range(len(hist.val_loss)))
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshots[best][k], rtol=0, atol=0)
    assert evaluate(net, *test)[0] == hist.val_loss[best]
    assert not net.training
    # Without early stopping the same run goes on and keeps its last weights.
    plain = model()
    plain_hist = fit(plain, train, TrainConfig(epochs=epochs, batch_size=64, lr=1.0), val=test)
    assert len(plain_hist.val_loss) == epochs and plain_hist.best_epoch == best
    assert evaluate(plain, *test)[0] == plain_hist.val_loss[-1]
    with pytest.raises(ConfigError, match="early_stopping=2 expected validation data"):
        fit(model(), train, cfg)


def test_augmentation_is_seeded_and_used() -> None:
    train, _ = digits()
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.1, augment="crop_flip")
    a, b, plain = model(), model(), model()
    fit(a, train, cfg)
    fit(b, train, cfg)
    fit(plain, train, TrainConfig(epochs=2, batch_size=64, lr=0.1))
    for va, vb, vp in zip(
        a.state_dict().values(), b.state_dict().values(), plain.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(va, vb, rtol=0, atol=0)
        assert not torch.equal(va, vp)
    with pytest.raises(ConfigError, match=r"crop_flip' expected images \(N, C, H, W\)"):
        fit(model(), (train[0].flatten(1), train[1]), cfg)


class Interrupted(Exception):
    pass


def test_resume_with_schedule_augment_early_stopping(tmp_path: Path) -> None:
    train, test = digits()
    cfg = TrainConfig(
        epochs=10,
        batch_size=64,
        lr=1.0,
        schedule="onecycle",
        augment="crop_flip",
        early_stopping=2,
    )
    straight = model()
    want = fit(straight, train, cfg, val=test)
    n = len(want.val_loss)
    assert want.best_epoch is not None and want.best_epoch + 2 + 1 == n < cfg.epochs
    # Interrupt after every epoch up to the stop, then resume from the checkpoint left behind.
    for stop_after in range(n):
        ckpt = tmp_path / f"run{stop_after}.pt"

        def interrupt(epoch: int, _: History, stop_after: int = stop_after) -> None:
            if epoch == stop_after:
                raise Interrupted

        with pytest.raises(Interrupted):
            fit(model(), train, cfg, val=test, checkpoint=ckpt, on_epoch=interrupt)
        assert load_checkpoint(ckpt)["epoch"] == stop_after  # the last good one, intact
        resumed = model(seed=123)  # different init: everything must come from the file
        got = fit(resumed, train, cfg, val=test, checkpoint=ckpt)
        assert got == want, stop_after
        for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resume_rules_for_new_fields(tmp_path: Path) -> None:
    train, _ = digits()
    ckpt = tmp_path / "c.pt"
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, schedule="cosine")
    fit(model(), train, cfg, checkpoint=ckpt)
    with pytest.raises(RunError, match="'cosine' schedule spans the whole run"):
        fit(
            model(),
            train,
            TrainConfig(epochs=3, batch_size=64, lr=0.05, schedule="cosine"),
            checkpoint=ckpt,
        )
    with pytest.raises(RunError, match="schedule: saved 'cosine', now 'step'"):
        fit(
            model(),
            train,
            TrainConfig(epochs=2, batch_size=64, lr=0.05, schedule="step"),
            checkpoint=ckpt,
        )
    # A checkpoint written before these fields existed resumes with the defaults.
    old_cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05)
    straight = model()
    want = fit(straight, train, old_cfg)
    old = tmp_path / "old.pt"
    fit(model(), train, TrainConfig(epochs=1, batch_size=64, lr=0.05), checkpoint=old)
    state = load_checkpoint(old)
    state["config"] = {
        k: state["config"][k]
        for k in ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "seed")
    }
    del state["history"]["lr"], state["history"]["best_epoch"]
    save_checkpoint(old, state)
    resumed = model(seed=7)
    got = fit(resumed, train, old_cfg, checkpoint=old)
    assert got.train_loss == want.train_loss and got.lr == [0.05] * 3
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_history_as_dict_has_new_fields() -> None:
    train, test = digits()
    d = fit(model(), train, TrainConfig(epochs=2, batch_size=128, lr=0.1), val=test).as_dict()
    assert set(d) == {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "best_epoch"}
    assert d["lr"] == [0.1, 0.1] and d["best_epoch"] in (0, 1)
    assert fit(model(), train, TrainConfig(epochs=1)).best_epoch is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": -1}, r"TrainConfig\.epochs: expected an int, epochs >= 0, got -1"),
        ({"epochs": 2.0}, r"epochs: expected an int"),
        ({"batch_size": 0}, r"batch_size: expected an int, batch_size >= 1, got 0"),
        ({"lr": float("nan")}, r"lr: expected a finite number, lr > 0, got nan"),
        ({"momentum": 1.0}, r"momentum: expected a number, 0 <= momentum < 1, got 1\.0"),
        ({"weight_decay": -1e-4}, r"weight_decay: expected .* >= 0, got -0\.0001"),
        ({"seed": "0"}, r"seed: expected an int, got '0'"),
        ({"nesterov": 1}, r"nesterov: expected True or False, got 1"),
        ({"nesterov": True, "optimizer": "adam"}, r"nesterov: expected False with optimizer"),
        ({"nesterov": True, "momentum": 0.0}, r"nesterov: expected momentum > 0"),
        ({"schedule": "linear"}, r"schedule: expected one of none, step, exponential, cosine, "),
        ({"step_size": 0}, r"step_size: expected an int, step_size >= 1 \(epochs\), got 0"),
        ({"gamma": 1.5}, r"gamma: expected a number, 0 < gamma <= 1, got 1\.5"),
        ({"label_smoothing": 1.0}, r"label_smoothing: expected .*< 1, got 1\.0"),
        ({"early_stopping": 0}, r"early_stopping: expected None or an int >= 1 .*, got 0"),
        (
            {"augment": "mixup"},
            r"augment: expected one of none, crop_flip, zoom, flips, mix, face, got 'mixup'",
        ),
        ({"amp": "yes"}, r"amp: expected True or False, got 'yes'"),
        ({"channels_last": None}, r"channels_last: expected True or False, got None"),
        ({"compile": 0}, r"compile: expected True or False, got 0"),
    ],
)
def test_config_errors(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kwargs)  # type: ignore[arg-type]


def test_nesterov_reaches_the_optimizer() -> None:
    from advlab.train.trainer import make_optimizer

    opt = make_optimizer(model(), TrainConfig(nesterov=True))
    assert opt.param_groups[0]["nesterov"] is True


def test_compile_trains_through_the_compiled_module(monkeypatch: pytest.MonkeyPatch) -> None:
    train, _ = digits()
    compiled: list[torch.nn.Module] = []

    def fake_compile(module: torch.nn.Module) -> torch.nn.Module:  # real inductor takes ~15 s
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    net = model()
    fit(net, train, TrainConfig(epochs=1, compile=True))
    assert compiled == [net]
    fit(model(), train, TrainConfig(epochs=1))
    assert len(compiled) == 1


def test_cpu_bf16_autocast_learns_and_is_really_used() -> None:
    train, test = digits()
    seen: list[torch.dtype] = []
    net = model()
    hook = net.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    hist = fit(net, train, TrainConfig(epochs=6, batch_size=32, lr=0.1, cpu_bf16=True), val=test)
    hook.remove()
    assert torch.bfloat16 in seen  # training steps ran under bfloat16 autocast
    assert all(p.dtype == torch.float32 for p in net.parameters())  # master weights stay fp32
    assert 0.90 < hist.val_acc[-1] <= 1.0
    plain = model()
    fit(plain, train, TrainConfig(epochs=1, batch_size=32, lr=0.1), val=test)
    assert not torch.equal(next(plain.parameters()), next(net.parameters()))


def test_cpu_bf16_feeds_a_cnn_channels_last_batches() -> None:
    torch.manual_seed(0)
    # Three channels: with one, an NCHW tensor also counts as channels_last-contiguous.
    train = (torch.rand(128, 3, 8, 8), torch.randint(0, 10, (128,)))
    net = ModelWrapper(create_model("small_cnn", in_channels=3, image_size=8, width=8))
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    layouts: list[bool] = []
    conv.register_forward_hook(
        lambda _m, i, _o: layouts.append(i[0].is_contiguous(memory_format=torch.channels_last))
    )
    fit(net, train, TrainConfig(epochs=1, batch_size=64, lr=0.1, cpu_bf16=True))
    assert layouts and all(layouts)
    layouts.clear()
    fit(net, train, TrainConfig(epochs=1, batch_size=64, lr=0.1))  # float32 on CPU: as given
    assert layouts and not any(layouts)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_channels_last_learn_and_resume(tmp_path: Path) -> None:
    (xt, yt), (xv, yv) = digits()
    train, test = (xt.cuda(), yt.cuda()), (xv.cuda(), yv.cuda())
    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.2, schedule="onecycle", early_stopping=3)

    def cnn() -> torch.nn.Module:
        torch.manual_seed(0)
        return ModelWrapper(create_model("small_cnn", in_channels=1, image_size=8, width=16)).cuda()

    def interrupt(epoch: int, _: History) -> None:
        if epoch == 1:
            raise Interrupted

    net = cnn()
    hist = fit(net, train, cfg, val=test)
    assert hist.val_acc[-1] > 0.8
    conv = next(p for p in net.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    ckpt = tmp_path / "cuda.pt"
    with pytest.raises(Interrupted):
        fit(cnn(), train, cfg, val=test, checkpoint=ckpt, on_epoch=interrupt)
    got = fit(cnn(), train, cfg, val=test, checkpoint=ckpt)
    # cuDNN may pick non-deterministic kernels, so equal up to rounding rather than bit-exact.
    assert got.lr == hist.lr and got.train_loss == pytest.approx(hist.train_loss, rel=1e-2)
