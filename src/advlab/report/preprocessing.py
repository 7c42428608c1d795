"""The report section of `advlab.data.preprocess.compare_preprocessing` (the preprocessing
steps of the tutorial seed 000 links): images and covariance matrices per step, and what they
show. The demo and the k-NN lab share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advlab.report.figures import image_grid, matrix_grid, rescale01
from advlab.report.render import Report
from advlab.runs import Run


def preprocessing_section(
    rep: Report,
    run: Run,
    stats: dict[str, Any],
    path: Path,
    *,
    epsilon: float,
    section: str = "Results",
) -> None:
    """Figures (images and covariance matrices per step) and text from `compare_preprocessing`."""
    with np.load(path) as pre:
        names = [str(n) for n in pre["names"]]
        # display scaling between the 1st and 99th percentile of each step's images
        scaled = np.stack([rescale01(v, clip_percent=1.0) for v in pre["images"]])
        images = scaled.transpose(1, 0, 2, 3, 4)  # (k, S, H, W, C)
        covs = dict(zip(names, pre["covariances"], strict=True))
    grid = image_grid(
        run.figure("preprocessing.png"),
        images,
        title=f"Preprocessing steps fitted on the training split (epsilon {epsilon})",
        cell_titles=[names] * len(images),
    )
    cov = matrix_grid(
        run.figure("covariance.png"),
        covs,
        title="Pixel covariance of the training images after each step",
        ncols=3,
    )
    cs = stats["covariance"]
    rep.text(
        section,
        f"""
**Preprocessing** (the steps of the tutorial seed 000 links, each a scikit-learn transformer
from `advlab.data.preprocess`, fitted on the training split and applied to test images; each
panel is scaled between its 1st and 99th percentile for display). Centring leaves the
covariance unchanged;
standardisation turns it into the correlation matrix (mean variance
{cs["standardised"]["mean_diag"]:.3f}: constant border pixels keep variance 0). Whitening
decorrelates the pixels: the mean absolute off-diagonal covariance falls from
{cs["original"]["mean_abs_offdiag"]:.2e} to {cs["ZCA-whitened"]["mean_abs_offdiag"]:.2e} after
ZCA, with mean variance {cs["ZCA-whitened"]["mean_diag"]:.3f} (below 1 because epsilon =
{epsilon} damps low-variance directions). ZCA output stays image-like (mean correlation with
the centred input {stats["ZCA-whitened_corr_with_input"]:.2f}); PCA-whitened output does not
({stats["PCA-whitened_corr_with_input"]:.2f}), because it lives in the rotated eigenbasis
rather than in pixel space.
""",
    )
    rep.figure(section, grid, "Test digits: original, centred, standardised, PCA and ZCA.")
    rep.figure(section, cov, "Covariance of the pixels (features) after each preprocessing step.")
