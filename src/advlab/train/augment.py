"""Batch-wise data augmentation on the device: whole-batch tensor ops, no per-image loop.

Random crop with zero padding plus horizontal flip, the standard CIFAR augmentation; and random
affine transforms in the manner of Keras' `ImageDataGenerator` (zoom, rotation, shear, shifts,
flips), one matrix per image applied to the whole batch by one `grid_sample`, for the
Flowers-17 configurations of seed 004 (`AFFINE_PRESETS`). The random draws come from a caller's
`torch.Generator`, so a seeded trainer reproduces them exactly (also across a resume, since it
saves that generator's state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from advlab.errors import ConfigError
from advlab.validation import check_int


@dataclass(frozen=True)
class AffineAugment:
    """Random affine transforms, Keras' `ImageDataGenerator` ranges.

    Args:
        zoom: Each axis is scaled by a factor drawn from [1 - zoom, 1 + zoom] (Keras'
            `zoom_range`; a factor above 1 zooms out).
        rotation: Degrees, drawn from [-rotation, rotation].
        shear: Shear angle in degrees, drawn from [-shear, shear].
        shift: Translation as a fraction of the width and height, drawn from [-shift, shift].
        hflip, vflip: Mirror left-right / top-bottom with probability 1/2.

    Outside the image, pixels repeat the nearest border pixel (Keras' fill_mode 'nearest').
    """

    zoom: float = 0.0
    rotation: float = 0.0
    shear: float = 0.0
    shift: float = 0.0
    hflip: bool = False
    vflip: bool = False

    def __post_init__(self) -> None:
        for name in ("zoom", "rotation", "shear", "shift"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name}: expected a number >= 0, found {value!r}")
        if self.zoom >= 1:
            raise ConfigError(f"zoom: expected a number in [0, 1), found {self.zoom!r}")


AFFINE_PRESETS: dict[str, AffineAugment] = {
    "zoom": AffineAugment(zoom=0.5),  # seed 004, configuration #1
    "flips": AffineAugment(hflip=True, vflip=True),  # configuration #2
    # Configuration #3, a random mix: the ranges of Keras' own small-data example.
    "mix": AffineAugment(zoom=0.2, rotation=40.0, shear=11.5, shift=0.2, hflip=True, vflip=True),
    # Faces (FER2013): mirror images, small shifts, rotations and zooms; never upside down.
    "face": AffineAugment(zoom=0.1, rotation=10.0, shift=0.1, hflip=True),
}
"""Random affine augmentations by name (the trainer's `augment`): seed 004's Flowers-17
configurations #1-#3 and the face augmentation of seed 001's emotion recogniser."""

AUGMENTATIONS = ("none", "crop_flip", *AFFINE_PRESETS)


def affine_params(
    n: int,
    aug: AffineAugment,
    *,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """`n` random matrices (n, 2, 3) for `apply_affine`, in grid_sample's normalised coordinates
    (output pixel -> input pixel): one draw of (n, 7) uniforms, one transfer to `device`."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, 7, generator=generator, device=gen_device, dtype=torch.float64) * 2 - 1
    zx, zy = 1 + aug.zoom * u[:, 0], 1 + aug.zoom * u[:, 1]
    angle = math.radians(aug.rotation) * u[:, 2]
    shear = math.radians(aug.shear) * u[:, 3]
    tx, ty = 2 * aug.shift * u[:, 4], 2 * aug.shift * u[:, 5]  # normalised coords span 2
    fx = torch.where((u[:, 6] < 0) & aug.hflip, -1.0, 1.0)
    fy = torch.where((u[:, 6].abs() < 0.5) & aug.vflip, -1.0, 1.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # input = R(angle) @ Shear(shear) @ diag(zx, zy) @ diag(fx, fy) @ output + t
    a = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    sh = torch.zeros(n, 2, 2, dtype=u.dtype, device=u.device)
    sh[:, 0, 0] = 1
    sh[:, 0, 1] = -torch.sin(shear)
    sh[:, 1, 1] = torch.cos(shear)
    scale = torch.diag_embed(torch.stack([zx * fx, zy * fy], -1))
    theta = torch.cat([a @ sh @ scale, torch.stack([tx, ty], -1)[..., None]], dim=-1)
    return theta.to(device=device or gen_device, dtype=torch.float32)


def apply_affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Each image of `x` (N, C, H, W) resampled through its matrix `theta` (N, 2, 3), bilinear,
    border pixels repeated outside."""
    if x.dim() != 4 or theta.shape != (len(x), 2, 3):
        raise ConfigError(
            f"apply_affine: expected images (N, C, H, W) and matrices (N, 2, 3), "
            f"found {tuple(x.shape)} and {tuple(theta.shape)}"
        )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_affine(
    x: torch.Tensor, aug: AffineAugment, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`apply_affine` with `affine_params` drawn for the batch `x`."""
    return apply_affine(x, affine_params(len(x), aug, generator=generator, device=x.device))


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
    check_int("crop_flip padding", padding, minimum=0)
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
    check_int("crop_flip padding", padding, minimum=0)
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
