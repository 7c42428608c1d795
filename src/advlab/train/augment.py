"""Batch-wise data augmentation on the device: whole-batch tensor ops, no per-image loop.

Random crop with zero padding plus horizontal flip, the standard CIFAR augmentation. The random
draws come from a caller's `torch.Generator`, so a seeded trainer reproduces them exactly
(also across a resume, since it saves that generator's state).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from advlab.errors import ConfigError

AUGMENTATIONS = ("none", "crop_flip")


def crop_flip_params(
    n: int,
    *,
    padding: int = 4,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw `n` crop offsets and flip decisions for `apply_crop_flip`.

    The draws are made on the generator's device (CPU without one) and then moved to `device`:
    one transfer for all `n` images.

    Args:
        n: Number of images.
        padding: Pixels of zero padding on each side; offsets lie in [0, 2 * padding].
        generator: Source of randomness; the global generator when None.
        device: Where the returned tensors live (the generator's device when None).

    Returns:
        ``(dy, dx, flip)``: int64 row and column offsets into the padded image and a bool
        flip mask, each of shape (n,).
    """
    _check_padding(padding)
    gen_device = generator.device if generator is not None else torch.device("cpu")
    offsets = torch.randint(
        0, 2 * padding + 1, (2, n), generator=generator, device=gen_device
    )  # (2, n)
    flip = torch.randint(0, 2, (n,), generator=generator, device=gen_device).bool()  # (n,)
    if device is not None:
        offsets, flip = offsets.to(device), flip.to(device)
    return offsets[0], offsets[1], flip


def apply_crop_flip(
    x: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    flip: torch.Tensor,
    *,
    padding: int = 4,
) -> torch.Tensor:
    """Crop each padded image at its offset, then mirror it left-right where `flip` is set.

    ``out[i] = crop(pad(x[i]), dy[i], dx[i])``, flipped along the width if ``flip[i]``, where
    `pad` adds `padding` zero pixels on every side and `crop` takes the H x W window whose top
    left corner is at row ``dy[i]``, column ``dx[i]`` of the padded image.

    Args:
        x: Images (N, C, H, W).
        dy, dx: Offsets (N,) in [0, 2 * padding], on x's device.
        flip: Bool mask (N,), on x's device.
        padding: Zero padding on each side.

    Returns:
        Augmented images, (N, C, H, W), same dtype and device as `x`.
    """
    _check_padding(padding)
    if x.dim() != 4:
        raise ConfigError(
            f"crop_flip: expected images (N, C, H, W), got a tensor of shape {tuple(x.shape)}"
        )
    n, c, h, w = x.shape
    if not (dy.shape == dx.shape == flip.shape == (n,)):
        raise ConfigError(
            f"crop_flip: expected dy, dx, flip of shape ({n},), got "
            f"{tuple(dy.shape)}, {tuple(dx.shape)}, {tuple(flip.shape)}"
        )
    wp = w + 2 * padding
    padded = F.pad(x, (padding, padding, padding, padding))  # (N, C, H + 2p, W + 2p), zeros
    row = torch.arange(h, device=x.device)
    col = torch.arange(w, device=x.device)
    rows = dy[:, None] + row  # (N, H)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - col, col)  # (N, W)
    # One gather over the flattened padded image does every crop and flip at once.
    flat = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w)  # (N, 1, H * W)
    out = padded.reshape(n, c, -1).gather(2, flat.expand(n, c, h * w))  # (N, C, H * W)
    return out.reshape(n, c, h, w)


def crop_flip(
    x: torch.Tensor, *, padding: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop of the zero-padded images plus random horizontal flip, batch-wise.

    Args:
        x: Images (N, C, H, W) on any device.
        padding: Pixels of zero padding on each side (4 for CIFAR).
        generator: Source of randomness; the global generator when None.

    Returns:
        Augmented images, (N, C, H, W), same dtype and device as `x`.
    """
    dy, dx, flip = crop_flip_params(len(x), padding=padding, generator=generator, device=x.device)
    return apply_crop_flip(x, dy, dx, flip, padding=padding)


def _check_padding(padding: int) -> None:
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ConfigError(f"crop_flip padding: expected an int >= 0, got {padding!r}")
