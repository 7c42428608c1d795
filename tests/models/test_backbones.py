"""Transfer-learning backbones: seed 004's table 7 to the unit, real forward passes."""

from __future__ import annotations

import pytest
import torch

from advlab.errors import ConfigError
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
    with pytest.raises(ConfigError, match=r"mobilenet\.imagenet"):
        build_backbone("mobilenet", weights="imagenet")
