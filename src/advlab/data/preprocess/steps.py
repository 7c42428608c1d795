"""The preprocessing steps by name, one registry for every lab, and the tutorial's comparison."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from advlab.data.preprocess.transformers import (
    Centering,
    PCAWhitening,
    Standardizer,
    ZCAWhitening,
    covariance,
)
from advlab.fileio import atomic_path
from advlab.registry import Registry


class _PCA32(PCA):
    """scikit-learn's PCA (``random_state=0``) projecting to float32 features."""

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(super().transform(X)).astype(np.float32)


@dataclass(frozen=True)
class Step:
    """A named preprocessing step.

    Args:
        label: How results and reports name it.
        build: ``epsilon -> unfitted transformer`` (epsilon: the whitening regulariser);
            None for the raw pixels, left as they are.
    """

    label: str
    build: Callable[[float], Any] | None


PREPROCESSING: Registry[Step] = Registry("preprocessing step")
PREPROCESSING.add("raw", Step("raw", None), "the pixels as they are")
PREPROCESSING.add("centred", Step("centred", lambda eps: Centering()), "minus the mean image")
PREPROCESSING.add(
    "standardised",
    Step("standardised", lambda eps: Standardizer()),
    "centred, divided by each pixel's standard deviation",
)


def _pca(k: int) -> Callable[[float], Any]:
    return lambda eps: _PCA32(k, random_state=0)


for _k in (50, 100):
    PREPROCESSING.add(
        f"pca-{_k}",
        Step(f"PCA, {_k} components", _pca(_k)),
        f"projection on the {_k} principal components",
    )
PREPROCESSING.add(
    "pca-whitened",
    Step("PCA-whitened", lambda eps: PCAWhitening(epsilon=eps)),
    "PCA whitening, every component",
)
PREPROCESSING.add(
    "pca-50-whitened",
    Step("PCA-whitened, 50 components", lambda eps: PCAWhitening(epsilon=eps, n_components=50)),
    "PCA whitening on the 50 principal components",
)
PREPROCESSING.add(
    "zca",
    Step("ZCA-whitened", lambda eps: ZCAWhitening(epsilon=eps)),
    "ZCA whitening (PCA whitening rotated back to pixel space)",
)


def preprocess(
    name: str, train: np.ndarray, test: np.ndarray, *, epsilon: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Step `name` fitted on `train` and applied to both.

    Args:
        name: A `PREPROCESSING` name.
        train, test: Pixels (N, ...) as uint8.
        epsilon: The whitening steps' regulariser.

    Returns:
        `train` and `test` unchanged for ``raw``; otherwise the step's features of the pixels
        scaled to [0, 1], fitted on `train`.
    """
    step = PREPROCESSING.get(name)
    if step.build is None:
        return train, test
    xtr, xte = train.astype(np.float32) / 255.0, test.astype(np.float32) / 255.0
    transformer = step.build(epsilon).fit(xtr)
    return transformer.transform(xtr), transformer.transform(xte)


COMPARED = ("centred", "standardised", "pca-whitened", "zca")


def compare_preprocessing(
    train: np.ndarray, shown: np.ndarray, path: Path, *, epsilon: float = 0.1
) -> dict[str, Any]:
    """Fit the tutorial's steps (`COMPARED`) on `train` (uint8, (N, H, W, C)) and apply them to
    `shown`; save to `path` and return statistics of what each does to the pixel covariance.

    The npz holds the step labels (``original`` first), the shown images after each step
    (S, k, H, W, C) and the training covariance after each step (S, D, D); the statistics are
    the mean absolute off-diagonal and mean diagonal covariance per step, and how image-like
    the whitened outputs stay (mean correlation with the centred input).
    """
    x_train = train.astype(np.float32) / 255.0
    x_shown = shown.astype(np.float32) / 255.0
    images = {"original": x_shown}
    covs = {"original": covariance(x_train)}
    for name in COMPARED:
        step = PREPROCESSING.get(name)
        assert step.build is not None
        transformer = step.build(epsilon).fit(x_train)
        images[step.label] = transformer.transform(x_shown)
        covs[step.label] = covariance(transformer.transform(x_train))
    off = ~np.eye(len(covs["original"]), dtype=bool)
    stats: dict[str, Any] = {
        "covariance": {
            name: {
                "mean_abs_offdiag": float(np.abs(c[off]).mean()),
                "mean_diag": float(np.diag(c).mean()),
            }
            for name, c in covs.items()
        }
    }
    centred = images["centred"].reshape(len(x_shown), -1)
    for name in ("PCA-whitened", "ZCA-whitened"):
        out = images[name].reshape(len(x_shown), -1)
        r = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(centred, out, strict=True)]
        stats[f"{name}_corr_with_input"] = float(np.mean(r))
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            names=np.array(list(images)),
            images=np.stack(list(images.values())).astype(np.float32),  # (S, k, H, W, C)
            covariances=np.stack(list(covs.values())).astype(np.float32),  # (S, D, D)
        )
    return stats
