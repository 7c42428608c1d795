"""Per-image statistics that may explain which images an attack breaks: contrast, edge
density and colour variance, computed for a whole batch at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
EDGE_THRESHOLD = 0.25
"""Sobel gradient magnitude (on [0, 1] luminance) above which a pixel counts as an edge."""


def image_statistics(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Contrast, edge density and colour variance of each image of a batch.

    Args:
        x: RGB images (N, 3, H, W) in [0, 1].

    Returns:
        Float tensors (N,): `contrast`, the standard deviation of the luminance;
        `edge_density`, the fraction of pixels whose Sobel gradient magnitude of the
        luminance exceeds `EDGE_THRESHOLD`; `colour_variance`, the mean over pixels of the
        variance of the three channels (0 for a grey image).
    """
    luma = torch.tensordot(x, torch.tensor(LUMA, dtype=x.dtype, device=x.device), dims=([1], [0]))
    sobel_x = (
        torch.tensor(
            [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device
        )
        / 4
    )
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None]  # (2, 1, 3, 3)
    grad = F.conv2d(F.pad(luma[:, None], (1, 1, 1, 1), mode="replicate"), kernels)
    magnitude = torch.linalg.vector_norm(grad, dim=1)  # (N, H, W)
    return {
        "contrast": luma.flatten(1).std(dim=1),
        "edge_density": (magnitude > EDGE_THRESHOLD).flatten(1).float().mean(dim=1),
        "colour_variance": x.var(dim=1, unbiased=False).flatten(1).mean(dim=1),
    }
