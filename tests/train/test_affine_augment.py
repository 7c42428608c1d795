"""Random affine augmentation (Keras ImageDataGenerator ranges), batched through grid_sample."""

from __future__ import annotations

import pytest
import torch

from advlab.errors import ConfigError
from advlab.train import TrainConfig, fit
from advlab.train.augment import (
    AFFINE_PRESETS,
    AffineAugment,
    affine_params,
    apply_affine,
    random_affine,
)


def test_identity_flips_and_shift_are_exact() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    eye = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3)
    torch.testing.assert_close(apply_affine(x, eye), x)
    gen = torch.Generator().manual_seed(0)
    theta = affine_params(500, AffineAugment(hflip=True, vflip=True), generator=gen)
    sx, sy = theta[:, 0, 0], theta[:, 1, 1]
    assert set(sx.tolist()) == {-1.0, 1.0} and set(sy.tolist()) == {-1.0, 1.0}
    both = float(((sx < 0) & (sy < 0)).float().mean())
    assert 0.18 < both < 0.32 and 0.4 < float((sx < 0).float().mean()) < 0.6
    flipped = apply_affine(x, torch.tensor([[-1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3))
    torch.testing.assert_close(flipped, x.flip(-1))
    # A shift by 2 / 8 of the normalised width moves the picture one pixel; borders repeat.
    shifted = apply_affine(x, torch.tensor([[1.0, 0, 0.25], [0, 1.0, 0]]).expand(2, 2, 3))
    torch.testing.assert_close(shifted[..., :-1], x[..., 1:])
    torch.testing.assert_close(shifted[..., -1], x[..., -1])


def test_drawn_ranges_follow_the_settings() -> None:
    gen = torch.Generator().manual_seed(1)
    aug = AffineAugment(zoom=0.5)
    theta = affine_params(2000, aug, generator=gen)
    zx = theta[:, 0, 0]
    assert float(zx.min()) >= 0.5 and float(zx.max()) <= 1.5 and float(zx.std()) > 0.25
    assert float(theta[:, 0, 1].abs().max()) == 0 and float(theta[:, :, 2].abs().max()) == 0
    rot = affine_params(2000, AffineAugment(rotation=30.0), generator=gen)
    angle = torch.rad2deg(torch.atan2(rot[:, 1, 0], rot[:, 0, 0]))
    assert float(angle.abs().max()) <= 30.0 + 1e-4 and float(angle.abs().max()) > 29.0
    a = random_affine(
        torch.rand(4, 3, 16, 16), AFFINE_PRESETS["mix"], generator=torch.Generator().manual_seed(2)
    )
    b = random_affine(
        torch.rand(4, 3, 16, 16), AFFINE_PRESETS["mix"], generator=torch.Generator().manual_seed(2)
    )
    assert a.shape == (4, 3, 16, 16) and not torch.equal(a, b)  # different inputs
    with pytest.raises(ConfigError, match=r"^zoom: expected a number in \[0, 1\)"):
        AffineAugment(zoom=1.0)
    with pytest.raises(ConfigError, match=r"^rotation: expected a number >= 0"):
        AffineAugment(rotation=-1)


def test_the_trainer_applies_a_preset_reproducibly() -> None:
    torch.manual_seed(0)
    x, y = torch.rand(64, 3, 12, 12), torch.randint(0, 3, (64,))

    def train() -> torch.Tensor:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 3))
        fit(
            model,
            (x, y),
            TrainConfig(epochs=2, batch_size=16, augment="mix", seed=3),
            progress=False,
        )
        return model[1].weight.detach().clone()

    first, again = train(), train()
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 3))
    fit(plain, (x, y), TrainConfig(epochs=2, batch_size=16, seed=3), progress=False)
    assert not torch.allclose(plain[1].weight, first)
