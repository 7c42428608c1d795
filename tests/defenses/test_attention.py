"""The pixel-wise attention layer: shape, gating, insertion into a wrapper, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from advlab.defenses import (
    PixelAttention,
    attention_layer,
    gate_map,
    logits_and_gate,
    open_pixels,
    with_pixel_attention,
)
from advlab.errors import ConfigError
from advlab.models import ModelWrapper


def _cnn() -> ModelWrapper:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)
    )
    return ModelWrapper(net, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3]).eval()


def test_gate_starts_open_and_multiplies_every_channel_by_one_weight() -> None:
    layer = PixelAttention(3, init_open=0.9)
    x = torch.rand(2, 3, 8, 8)
    out, a = layer.gate(x)
    assert out.shape == x.shape and a.shape == (2, 1, 8, 8)
    torch.testing.assert_close(a, torch.full((2, 1, 8, 8), 0.9), atol=1e-3, rtol=0)
    torch.testing.assert_close(out, x * a)
    # A trained gate: random weights give a map in (0, 1) that differs per pixel, the same
    # weight for the three channels of a pixel.
    nn.init.normal_(layer.branch[2].weight, std=1.0)
    out, a = layer.gate(x)
    a = a.detach()
    assert bool(((a > 0) & (a < 1)).all()) and float(a.std()) > 0.01
    torch.testing.assert_close(out, x * a)
    torch.testing.assert_close(out[:, 0] / x[:, 0], out[:, 2] / x[:, 2])


def test_gate_returns_the_map_and_the_layer_keeps_no_state() -> None:
    layer = PixelAttention(3, init_open=0.7)
    nn.init.normal_(layer.branch[2].weight, std=1.0)
    x = torch.rand(3, 3, 8, 8)
    before = dict(vars(layer))
    out, a = layer.gate(x)
    forward = layer(x)
    assert vars(layer).keys() == before.keys()  # no map of the last call kept
    assert all(vars(layer)[k] is v for k, v in before.items())
    assert torch.equal(a, layer.attention(x))  # the map is the gate's own output
    assert torch.equal(a, torch.sigmoid(layer.branch(x)))
    assert torch.equal(out, x * a) and torch.equal(forward, out)


def test_logits_and_gate_is_one_forward_pass_with_its_map() -> None:
    model = with_pixel_attention(_cnn())
    layer = attention_layer(model)
    assert layer is not None
    torch.manual_seed(2)
    nn.init.normal_(layer.branch[2].weight, std=1.0)
    x = torch.rand(4, 3, 8, 8)
    before = dict(vars(model))
    logits, a = logits_and_gate(model, x)
    assert vars(model).keys() == before.keys()
    assert torch.equal(logits, model(x))
    normalised = (x - model.mean) / model.std  # type: ignore[operator]
    assert torch.equal(a, layer.attention(normalised)) and a.shape == (4, 1, 8, 8)
    # Both are in the graph: the map's own term reaches the gate's weights.
    (grad,) = torch.autograd.grad((1 - a).mean(), layer.branch[2].weight)
    assert float(grad.abs().sum()) > 0
    # The bare network (the registered `pixel_attention` inside its wrapper) works as well.
    net_logits, net_a = logits_and_gate(model.net, normalised)
    assert torch.equal(net_logits, logits) and torch.equal(net_a, a)
    with pytest.raises(ConfigError, match=r"^model: expected a PixelAttention layer first.*none"):
        logits_and_gate(_cnn(), x)
    inside = ModelWrapper(nn.Sequential(nn.Identity(), model.net))
    with pytest.raises(ConfigError, match="found one elsewhere in the model"):
        logits_and_gate(inside, x)


def test_with_pixel_attention_wraps_the_same_network() -> None:
    base = _cnn()
    x = torch.rand(5, 3, 8, 8)
    model = with_pixel_attention(base, init_open=0.98).eval()
    assert attention_layer(model) is not None and attention_layer(base) is None
    assert model.bounds == base.bounds
    assert model.net[1] is base.net  # shared, not copied
    normalised = (x - base.mean) / base.std
    gate = attention_layer(model).attention(normalised)  # type: ignore[union-attr]
    assert float((gate.detach() - 0.98).abs().max()) < 1e-3
    torch.testing.assert_close(model(x), base.net(gate * normalised))
    # A closed gate replaces every pixel by the dataset mean (0 after normalisation).
    layer = attention_layer(model)
    assert layer is not None
    nn.init.constant_(layer.branch[2].bias, -100.0)
    torch.testing.assert_close(model(x), base.net(torch.zeros_like(x)))
    with pytest.raises(ConfigError, match="already has a PixelAttention"):
        with_pixel_attention(model)


def test_gradients_reach_the_gate() -> None:
    model = with_pixel_attention(_cnn())
    layer = attention_layer(model)
    assert layer is not None
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    nn.functional.cross_entropy(model(x), y).backward()
    grad = layer.branch[2].weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"kernel": 2}, "odd"), ({"init_open": 1.0}, "init_open"), ({"hidden": 0}, "hidden")],
)
def test_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PixelAttention(3, **kwargs)  # type: ignore[arg-type]


def test_wrong_channels() -> None:
    with pytest.raises(ConfigError, match=r"expected \(N, 3, H, W\)"):
        PixelAttention(3)(torch.rand(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="ModelWrapper"):
        with_pixel_attention(nn.Linear(3, 3))  # type: ignore[arg-type]


def test_the_registered_model_loads_a_wrapped_models_weights(tmp_path: Path) -> None:
    """`pixel_attention` rebuilds what `with_pixel_attention` made, so the store can keep it."""
    from advlab.models import create_model
    from advlab.train.store import ModelRecipe, load_model, save_model

    base = ModelWrapper(
        create_model("mlp", in_shape=(1, 8, 8), num_classes=10, width=8), mean=[0.3], std=[0.4]
    )
    wrapped = with_pixel_attention(base, hidden=4)
    layer = attention_layer(wrapped)
    assert layer is not None
    nn.init.normal_(layer.branch[2].weight)
    recipe = ModelRecipe(
        "pixel_attention", "digits", {"base": "mlp", "base_config": {"width": 8}, "hidden": 4}
    )
    path = save_model(tmp_path / "apr.pt", wrapped, recipe, (1, 8, 8), 10, {})
    again = load_model(path)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(again(x), wrapped.eval()(x))
    assert attention_layer(again) is not None
    with pytest.raises(ConfigError, match="another model"):
        create_model("pixel_attention", base="pixel_attention")


def test_gate_map_and_open_pixels_follow_the_gate() -> None:
    plain = _cnn()
    assert gate_map(plain, torch.rand(1, 3, 8, 8)) is None
    assert open_pixels(plain, torch.rand(1, 3, 8, 8)) is None
    model = with_pixel_attention(plain)
    layer = attention_layer(model)
    assert layer is not None
    torch.manual_seed(1)
    nn.init.normal_(layer.branch[2].weight, std=1.0)
    x = torch.rand(3, 3, 8, 8)
    gate = gate_map(model, x)
    assert gate is not None and gate.shape == (3, 8, 8)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    expected = layer.attention((x - mean[:, None, None]) / std[:, None, None])[:, 0]
    torch.testing.assert_close(gate, expected)
    mask = open_pixels(model, x, fraction=0.25)
    assert mask is not None and mask.dtype == torch.bool
    assert mask.flatten(1).sum(1).tolist() == [16, 16, 16]
    closed_max = torch.where(mask, -1.0, gate).flatten(1).max(1).values
    open_min = torch.where(mask, gate, 2.0).flatten(1).min(1).values
    assert bool((open_min > closed_max).all())
    with pytest.raises(ConfigError, match=r"^fraction: expected a number in \(0, 1\]"):
        open_pixels(model, x, fraction=0.0)
