"""Transfer learning: the cut ResNet-18 computes what the network computes, cached features are
reused and keyed by their inputs, and fine-tuning trains only what each phase should."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from advlab.classic.tabular import CLASSIFIERS, tabular_classifiers
from advlab.errors import ConfigError
from advlab.models import ModelWrapper, create_model
from advlab.train import TrainConfig, fit
from advlab.train.transfer import (
    Backbone,
    TransferHead,
    cached_features,
    fine_tune,
    resnet18_backbone,
    run_chunked,
)


def test_resnet_cut_equals_the_network_without_its_classifier() -> None:
    torch.manual_seed(0)
    model = ModelWrapper(
        create_model("resnet18", num_classes=10), mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3]
    ).eval()
    backbone = resnet18_backbone(model, weights="test")
    x = torch.rand(3, 3, 32, 32)
    feats = backbone.features(x)
    assert feats.shape == (3, 512)
    with torch.no_grad():
        logits = model(x)
        torch.testing.assert_close(model.inner.fc(feats), logits, rtol=1e-4, atol=1e-5)
    assert not any(p.requires_grad for p in backbone.frozen.parameters())
    with pytest.raises(ConfigError, match="expected a torchvision ResNet"):
        resnet18_backbone(ModelWrapper(nn.Linear(3, 2)))


def test_cached_features_are_reused_and_keyed_by_inputs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    x = torch.rand(5, 3, 2, 2)
    first = cached_features(net, x, "toy", folder=tmp_path)
    torch.testing.assert_close(first, run_chunked(net, x))
    assert len(list(tmp_path.glob("toy-*.npy"))) == 1

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("computed again")

    torch.testing.assert_close(cached_features(Broken(), x, "toy", folder=tmp_path), first)
    other = cached_features(net, x + 1, "toy", folder=tmp_path)  # other images: another file
    assert len(list(tmp_path.glob("toy-*.npy"))) == 2 and not torch.allclose(other, first)


def _toy() -> tuple[Backbone, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    frozen = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    top = nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    x = torch.rand(64, 3, 8, 8)
    y = (x[:, 0].mean(dim=(1, 2)) > x[:, 1].mean(dim=(1, 2))).long()
    f = run_chunked(frozen, x)
    return Backbone("toy", frozen, top, "test", ""), (f[:48], y[:48]), (f[48:], y[48:])


def test_phase_a_is_training_the_head_on_top_features() -> None:
    backbone, train, val = _toy()
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.05, optimizer="adam", early_stopping=4)
    torch.manual_seed(1)
    head = TransferHead(6, 2, hidden=8, batch_norm=True, dropout=0.5)
    twin = copy.deepcopy(head)
    torch.manual_seed(2)  # dropout draws from the global generator
    result = fine_tune(backbone, head, train, val, cfg, None, progress=False)
    assert result.phase_b is None and result.top is backbone.top
    torch.manual_seed(2)
    direct = fit(
        twin,
        (run_chunked(backbone.top, train[0]), train[1]),
        cfg,
        val=(run_chunked(backbone.top, val[0]), val[1]),
        progress=False,
    )
    assert result.phase_a.val_loss == direct.val_loss
    for a, b in zip(head.state_dict().values(), twin.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_phase_b_trains_a_copy_of_the_top() -> None:
    backbone, train, val = _toy()
    before = copy.deepcopy(backbone.top.state_dict())
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.01, optimizer="adam", early_stopping=2)
    head = TransferHead(6, 2, hidden=8)
    result = fine_tune(backbone, head, train, val, cfg, cfg, progress=False)
    assert result.phase_b is not None and len(result.phase_b.val_loss) == 2
    for key, value in backbone.top.state_dict().items():  # the backbone is left as it was
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    moved = {k for k, v in result.top.state_dict().items() if not torch.equal(v, before[k])}
    # Convolution and batch-norm affine weights learn; the running statistics stay (inference
    # mode), so the head's phase-A features are what phase B starts from.
    assert {"0.weight", "1.weight", "1.bias"} <= moved
    assert not moved & {"1.running_mean", "1.running_var", "1.num_batches_tracked"}
    with pytest.raises(ConfigError, match=r"^dropout: expected a rate in \[0, 1\)"):
        TransferHead(6, 2, dropout=1.0)


def test_tabular_classifiers_fit_a_separable_problem() -> None:
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=rng)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long().numpy()
    xn = x.numpy()
    for name, clf in tabular_classifiers(seed=0).items():
        clf.fit(xn[:150], y[:150])
        acc = float((clf.predict(xn[150:]) == y[150:]).mean())
        assert acc > 0.8, name
    assert tuple(tabular_classifiers(("svm", "knn"))) == ("svm", "knn")
    assert set(CLASSIFIERS) == {"naive_bayes", "knn", "svm", "logistic_regression", "random_forest"}
    with pytest.raises(ConfigError, match=r"^classifiers: expected names from"):
        tabular_classifiers(("xgboost",))
