"""Batch-wise crop + flip: each output is a crop of the zero-padded input, seeded, varied."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from advlab.errors import ConfigError
from advlab.train import apply_crop_flip, crop_flip, crop_flip_params


def images(n: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # (N, C, H, W)


def test_matches_a_manual_crop_and_flip() -> None:
    x = images()
    out = crop_flip(x, generator=torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    dy, dx, flip = crop_flip_params(len(x), generator=torch.Generator().manual_seed(1))
    padded = F.pad(x, (4, 4, 4, 4))  # (N, C, 40, 40), zeros around
    for i in range(len(x)):  # the slow reference, one image at a time
        want = padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        if flip[i]:
            want = want.flip(-1)
        torch.testing.assert_close(out[i], want, rtol=0, atol=0)
    # The draws cover every offset in [0, 8] and both flip states.
    assert set(dy.tolist()) == set(dx.tolist()) == set(range(9))
    assert set(flip.tolist()) == {False, True}


def test_known_offsets() -> None:
    x = images(3)
    four, zero, eight = torch.full((3,), 4), torch.zeros(3, dtype=torch.long), torch.full((3,), 8)
    no, yes = torch.zeros(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool)
    torch.testing.assert_close(apply_crop_flip(x, four, four, no), x, rtol=0, atol=0)  # centred
    torch.testing.assert_close(apply_crop_flip(x, four, four, yes), x.flip(-1), rtol=0, atol=0)
    corner = apply_crop_flip(x, zero, eight, no)  # shifted down 4 rows and left 4 columns
    assert corner[:, :, :4].abs().sum() == 0 and corner[:, :, :, 28:].abs().sum() == 0
    torch.testing.assert_close(corner[:, :, 4:, :28], x[:, :, :28, 4:], rtol=0, atol=0)


def test_seeded_and_different_across_steps() -> None:
    x = images()
    a = torch.Generator().manual_seed(5)
    b = torch.Generator().manual_seed(5)
    first_a, second_a = crop_flip(x, generator=a), crop_flip(x, generator=a)
    first_b, second_b = crop_flip(x, generator=b), crop_flip(x, generator=b)
    torch.testing.assert_close(first_a, first_b, rtol=0, atol=0)
    torch.testing.assert_close(second_a, second_b, rtol=0, atol=0)
    assert not torch.equal(first_a, second_a)
    assert not torch.equal(first_a, crop_flip(x, generator=torch.Generator().manual_seed(6)))


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"expected images \(N, C, H, W\), got .* \(4, 3072\)"):
        crop_flip(images(4).flatten(1))
    with pytest.raises(ConfigError, match=r"^crop_flip padding: expected an int >= 0, found -1$"):
        crop_flip(images(4), padding=-1)
    with pytest.raises(ConfigError, match=r"expected dy, dx, flip of shape \(4,\)"):
        z = torch.zeros(3, dtype=torch.long)
        apply_crop_flip(images(4), z, z, z.bool())
