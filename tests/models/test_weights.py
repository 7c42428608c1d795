"""Tests of advlab.models.weights: lookup, the loud missing-file error, import, loading."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet18_Weights

from advlab.errors import (
    ChecksumError,
    ConfigError,
    DataError,
    RegistryError,
    WeightsNotFoundError,
)
from advlab.models import create_model
from advlab.models import weights as W

NAME = "resnet18.imagenet"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty advlab cache and torch hub folders; returns (advlab weights dir, hub checkpoints)."""
    cache, hub = tmp_path / "cache", tmp_path / "hub"
    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(cache))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return cache / "weights", hub / "checkpoints"


def _register(monkeypatch: pytest.MonkeyPatch, cfg: W.WeightsConfig) -> None:
    """Register `cfg` under its name for this test only (replacing the entry of that name)."""
    weights = W.WEIGHTS.copy()
    weights.add(cfg.name, cfg, replace=True)
    monkeypatch.setattr(W, "WEIGHTS", weights)


def _patch_sha(monkeypatch: pytest.MonkeyPatch, name: str, sha256: str) -> W.WeightsConfig:
    cfg = dataclasses.replace(W.WEIGHTS.get(name), sha256=sha256)
    _register(monkeypatch, cfg)
    return cfg


@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A random 1000-class resnet18 state dict saved like torchvision's file, and its tensors."""
    torch.manual_seed(0)
    state = create_model("resnet18", num_classes=1000).state_dict()
    path = tmp_path_factory.mktemp("download") / "resnet18_imagenet1k_v1.pth"
    torch.save(state, path)
    return path, state


def test_config_comes_from_torchvision() -> None:
    cfg = W.get_config(NAME)
    assert cfg.url == ResNet18_Weights.IMAGENET1K_V1.url
    assert cfg.file == "resnet18-f37072fd.pth" == cfg.url.rsplit("/", 1)[-1]
    assert cfg.sha256 is None and cfg.expected_digest == "f37072fd"
    with pytest.raises(RegistryError, match=r"known: inception_v3\.imagenet, resnet18\.imagenet"):
        W.get_config("resnet18.cifar")
    from torchvision.models import Inception_V3_Weights, VGG16_Weights

    for name, enum in (
        ("vgg16.imagenet", VGG16_Weights.IMAGENET1K_V1),
        ("inception_v3.imagenet", Inception_V3_Weights.IMAGENET1K_V1),
    ):
        cfg = W.get_config(name)
        assert (cfg.url, cfg.file) == (enum.url, enum.url.rsplit("/", 1)[-1])


def test_search_order(dirs: tuple[Path, Path]) -> None:
    ours, hub = dirs
    cfg = W.get_config(NAME)
    assert W.search_paths(cfg) == [ours / cfg.file, hub / cfg.file]


def test_missing_weights_error_is_loud(dirs: tuple[Path, Path]) -> None:
    ours, hub = dirs
    with pytest.raises(WeightsNotFoundError) as info:
        create_model("resnet18", weights="imagenet")
    msg = str(info.value)
    assert "IMAGENET WEIGHTS NOT AVAILABLE" in msg and "ImageNet" in msg
    assert str(ours / "resnet18-f37072fd.pth") in msg
    assert str(hub / "resnet18-f37072fd.pth") in msg
    assert "advlab weights import" in msg and ResNet18_Weights.IMAGENET1K_V1.url in msg


def test_import_rejects_wrong_sha(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, _ = dirs
    fake = tmp_path / "fake.pth"
    torch.save({"w": torch.zeros(3)}, fake)
    _patch_sha(monkeypatch, NAME, "0" * 64)
    with pytest.raises(ChecksumError, match=r"fake\.pth.*matches no known"):
        W.import_weights(fake)
    with pytest.raises(ChecksumError, match="0" * 64):
        W.import_weights(fake, name=NAME)
    assert not ours.exists() or not any(ours.iterdir())  # nothing installed, no temp file left


def test_import_accepts_matching_sha(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, _ = dirs
    fake = tmp_path / "downloaded.pth"
    torch.save({"w": torch.arange(4.0)}, fake)
    cfg = _patch_sha(monkeypatch, NAME, _sha256(fake))
    installed = W.import_weights(fake)
    assert installed == ours / cfg.file
    assert installed.read_bytes() == fake.read_bytes()
    assert sorted(p.name for p in ours.iterdir()) == [cfg.file]
    assert W.find_weights(cfg) == installed


def test_import_by_name_prefix(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a full sha256, the prefix in torchvision's file name is what is checked."""
    ours, _ = dirs
    fake = tmp_path / "any-name.bin"
    fake.write_bytes(b"not really weights")
    prefix = _sha256(fake)[:8]
    cfg = W.WeightsConfig(name="toy.test", tag="test", file=f"toy-{prefix}.pth", url="u")
    _register(monkeypatch, cfg)
    assert W.import_weights(fake, name="toy.test") == ours / f"toy-{prefix}.pth"
    with pytest.raises(RegistryError, match=r"unknown pretrained weights 'toy\.other'"):
        W.import_weights(fake, name="toy.other")
    with pytest.raises(DataError, match="expected a file"):
        W.import_weights(tmp_path / "absent.pth")


def test_config_needs_a_digest() -> None:
    with pytest.raises(ConfigError, match="sha256"):
        W.WeightsConfig(name="x.y", tag="y", file="plain.pth", url="u")
    with pytest.raises(ConfigError, match="64 lower-case hex"):
        W.WeightsConfig(name="x.y", tag="y", file="plain.pth", url="u", sha256="abc")


def test_load_imported_imagenet_into_resnet18(
    dirs: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    fake_imagenet: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    path, state = fake_imagenet
    cfg = _patch_sha(monkeypatch, NAME, _sha256(path))
    W.import_weights(path)

    full = create_model("resnet18", num_classes=1000, weights="imagenet")
    assert full.advlab_weights == f"imagenet:{cfg.file}"
    assert all(torch.equal(v, state[k]) for k, v in full.state_dict().items())

    head = create_model("resnet18", num_classes=10, weights="imagenet")
    assert W.weights_source(head) == f"imagenet:{cfg.file} (random: fc)"
    assert torch.equal(head.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.equal(head.conv1.weight, state["conv1.weight"])
    assert head.fc.weight.shape == (10, 512)

    cifar = create_model("resnet18", num_classes=10, stem="cifar", weights="imagenet")
    assert W.weights_source(cifar) == f"imagenet:{cfg.file} (random: conv1, bn1, fc)"
    assert torch.equal(cifar.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert cifar.conv1.weight.shape == (64, 3, 3, 3)
    assert W.weights_source(create_model("resnet18")) == "random"


def test_hub_checkpoint_dir_is_searched(
    dirs: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    fake_imagenet: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    _, hub = dirs
    path, state = fake_imagenet
    cfg = _patch_sha(monkeypatch, NAME, _sha256(path))
    hub.mkdir(parents=True)
    (hub / cfg.file).symlink_to(path)
    model = create_model("resnet18", num_classes=1000, weights="imagenet")
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_tampered_or_foreign_file_is_rejected(
    dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, _ = dirs
    cfg = W.get_config(NAME)
    ours.mkdir(parents=True)
    torch.save({"w": torch.zeros(2)}, ours / cfg.file)  # not the published file
    with pytest.raises(ChecksumError, match="does not start with f37072fd"):
        create_model("resnet18", weights="imagenet")

    _patch_sha(monkeypatch, NAME, _sha256(ours / cfg.file))  # right digest, wrong architecture
    with pytest.raises(DataError, match="does not fit"):
        create_model("resnet18", weights="imagenet")

    (ours / cfg.file).write_bytes(b"truncated")
    _patch_sha(monkeypatch, NAME, _sha256(ours / cfg.file))
    with pytest.raises(DataError, match="cannot be loaded"):
        create_model("resnet18", weights="imagenet")
