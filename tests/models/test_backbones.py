"""Transfer-learning backbones: seed 004's table 7 to the unit, real forward passes."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from advlab.errors import ChecksumError, ConfigError, WeightsNotFoundError
from advlab.models.backbones import BACKBONES, backbone_table, build_backbone

# The report's table 7 (Keras, 128 x 128 input): trainable parameters, feature map (H, W, C).
REPORT = {
    "vgg16": (14_714_688, (4, 4, 512), 8_192),
    "inception_v3": (21_768_352, (2, 2, 2048), 8_192),
    "mobilenet": (3_206_976, (4, 4, 1024), 16_384),
    "xception": (20_806_952, (4, 4, 2048), 32_768),
}


def test_the_table_matches_the_report() -> None:
    rows = {r["backbone"]: r for r in backbone_table()}
    assert set(rows) == set(REPORT) == set(BACKBONES)
    for name, (params, shape, tabular) in REPORT.items():
        r = rows[name]
        assert r["Keras trainable"] == params == r["report parameters"]
        assert r["feature map"] == shape == r["report feature map"]
        assert r["tabular features"] == tabular
    # torchvision's Inception-v3 keeps the batch-norm scales Keras leaves out (scale=False).
    assert rows["inception_v3"]["parameters"] - rows["inception_v3"]["Keras trainable"] == 17_216
    assert rows["vgg16"]["weighted layers"] == 13 and rows["mobilenet"]["weighted layers"] == 27
    small = {r["backbone"]: r for r in backbone_table(("mobilenet", "xception"), image_size=64)}
    assert small["mobilenet"]["feature map"] == (2, 2, 1024)
    assert small["xception"]["feature map"] == (2, 2, 2048)


@pytest.mark.parametrize("name", ["mobilenet", "xception"])
def test_advlabs_own_backbones_run(name: str) -> None:
    torch.manual_seed(0)
    model = build_backbone(name).eval()
    assert model.advlab_weights == "random"  # type: ignore[attr-defined]
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 1024 if name == "mobilenet" else 2048, 1, 1)
    assert bool(torch.isfinite(out).all()) and float(out.std()) > 0
    with torch.no_grad():  # images are independent: a batch of one gives the same features
        torch.testing.assert_close(model(x[1:]), out[1:], rtol=1e-4, atol=1e-5)


def test_bad_names_and_missing_weights_raise() -> None:
    with pytest.raises(ConfigError, match=r"^backbone: expected one of \['inception_v3'"):
        build_backbone("resnet50")
    with pytest.raises(ConfigError, match=r"'mobilenet\.imagenet'.*Keras publishes them as \.h5"):
        build_backbone("mobilenet", weights="imagenet")


@pytest.mark.parametrize("name", ["vgg16", "inception_v3"])
def test_published_names_map_onto_the_backbone(name: str) -> None:
    """Every tensor of the backbone comes from torchvision's published model, once; the rest of
    that model (classifier, auxiliary head) is left out. Built on the meta device: no weights."""
    from torchvision.models import inception_v3, vgg16

    spec = BACKBONES[name]
    assert spec.rename is not None
    with torch.device("meta"):
        published = (vgg16() if name == "vgg16" else inception_v3(init_weights=False)).state_dict()
        ours = build_backbone(name).state_dict()
    mapped = [spec.rename(k) for k in published]
    kept = [k for k in mapped if k is not None]
    assert sorted(kept) == sorted(ours) and len(set(kept)) == len(kept)
    for key, new in zip(published, mapped, strict=True):
        if new is not None:
            assert published[key].shape == ours[new].shape, key


def test_imagenet_weights_load_through_a_verified_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A synthetic file laid out like torchvision's vgg16 (features.*, classifier.*) with its
    sha256 registered loads into the backbone, tensor for tensor, and says where it came from."""
    from advlab.models import weights as W

    monkeypatch.setenv("ADVLAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    torch.manual_seed(1)
    source = build_backbone("vgg16").state_dict()
    published = {f"features.{k}": v for k, v in source.items()}
    published["classifier.0.weight"] = torch.zeros(4, 3)
    file = tmp_path / "download.pth"
    torch.save(published, file)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    weights = W.WEIGHTS.copy()
    weights.add(
        "vgg16.imagenet",
        dataclasses.replace(W.WEIGHTS.get("vgg16.imagenet"), sha256=digest),
        replace=True,
    )
    monkeypatch.setattr(W, "WEIGHTS", weights)
    with pytest.raises(WeightsNotFoundError, match=r"vgg16-397923af\.pth"):
        build_backbone("vgg16", weights="imagenet")
    W.import_weights(file)
    torch.manual_seed(2)  # a different random start: every tensor must come from the file
    model = build_backbone("vgg16", weights="imagenet")
    assert model.advlab_weights == "imagenet:vgg16-397923af.pth"  # type: ignore[attr-defined]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, source[key], rtol=0, atol=0)
    tampered = bytearray(file.read_bytes())
    tampered[-1] ^= 1  # another file under the same name
    (tmp_path / "cache" / "weights" / "vgg16-397923af.pth").write_bytes(bytes(tampered))
    with pytest.raises(ChecksumError, match=r"vgg16-397923af\.pth"):
        build_backbone("vgg16", weights="imagenet")
