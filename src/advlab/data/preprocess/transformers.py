"""The preprocessing transformers: centring, standardisation, PCA and ZCA whitening.

Lab seed 000 Task 1 applies the steps of Hadrien Jean's tutorial to MNIST. Each step is a
scikit-learn transformer, so its statistics are fitted on the training split only and it drops
into a `sklearn.pipeline.Pipeline`.

Inputs are (N, D) arrays or image arrays of any rank >= 2 ((N, H, W), (N, H, W, C),
(N, C, H, W)), one sample per row along axis 0. They are flattened to (N, D) internally and given
back in the input's shape. Integer pixels (uint8) are accepted; statistics are computed in float64
and outputs are float32 unless ``dtype`` says otherwise. Work is done in chunks of rows so that
CIFAR-sized inputs (N = 50 000, D = 3072) never need a full float64 copy; the (D, D) covariance
and its eigenvectors are the only large float64 arrays.

References:
    H. Jean, "Preprocessing for deep learning: from covariance matrix to image whitening",
    https://hadrienj.github.io/posts/Preprocessing-for-deep-learning/
    A. J. Bell and T. J. Sejnowski, "The 'independent components' of natural scenes are edge
    filters", Vision Research 37(23), 1997 (ZCA whitening).
    A. Kessy, A. Lewin and K. Strimmer, "Optimal whitening and decorrelation", The American
    Statistician 72(4), 2018 (PCA versus ZCA whitening).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from advlab.errors import ConfigError
from advlab.validation import check_in, check_number

__all__ = ["Centering", "PCAWhitening", "Standardizer", "ZCAWhitening", "covariance"]

logger = logging.getLogger(__name__)

Float64Array = npt.NDArray[np.float64]
FloatArray = npt.NDArray[np.floating[Any]]

# A (2048, 3072) float64 chunk is 50 MB: large enough for fast BLAS, small enough for CIFAR.
_CHUNK_ROWS = 2048


def _row_slices(n_rows: int) -> Iterator[slice]:
    for start in range(0, n_rows, _CHUNK_ROWS):
        yield slice(start, min(start + _CHUNK_ROWS, n_rows))


def _normalise_axis(channel_axis: int, shape: tuple[int, ...]) -> int:
    """Turn `channel_axis` into a positive axis of an array of `shape`; axis 0 holds samples."""
    ndim = len(shape)
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, int | np.integer):
        raise ConfigError(f"channel_axis: expected an int, found {channel_axis!r}")
    axis = int(channel_axis) + ndim if channel_axis < 0 else int(channel_axis)
    if not 1 <= axis < ndim:
        raise ConfigError(
            f"channel_axis: expected an axis in 1..{ndim - 1} or -{ndim - 1}..-1 (axis 0 holds "
            f"samples) for an array of shape {shape}, found {channel_axis}"
        )
    return axis


def _check_array(
    X: object,
    *,
    name: str = "X",
    min_samples: int = 1,
    n_features: int | None = None,
    channel_axis: int | None = None,
    n_channels: int | None = None,
) -> npt.NDArray[Any]:
    """Validate a batch of samples and return it as an ndarray of its own (real) dtype.

    Args:
        X: Array-like of shape (N, D) or (N, ...), one sample per entry of axis 0.
        name: Argument name used in error messages.
        min_samples: Fewest rows accepted.
        n_features: Features per sample seen in fit (product of the non-sample dimensions).
        channel_axis: Axis holding channels, checked to exist and not to be the sample axis.
        n_channels: Channels seen in fit, checked along `channel_axis`.

    Returns:
        The array, not copied when `X` already is a numeric ndarray.

    Raises:
        ConfigError: wrong dtype, rank < 2, too few samples, a feature or channel count that
            differs from fit, or NaN/infinite values.
    """
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{name}: expected a numeric array of shape (N, D) or (N, ...), found an object "
            f"numpy cannot convert ({exc})"
        ) from exc
    if arr.dtype.kind not in "biuf":
        raise ConfigError(
            f"{name}: expected a real numeric array (bool, int, uint or float), found dtype "
            f"{arr.dtype}"
        )
    if arr.ndim < 2:
        raise ConfigError(
            f"{name}: expected an array of rank >= 2, shape (N, D) or (N, ...) with one sample "
            f"per row, found shape {arr.shape}"
        )
    if arr.shape[0] < min_samples:
        raise ConfigError(
            f"{name}: expected at least {min_samples} samples along axis 0, found shape {arr.shape}"
        )
    found_features = math.prod(arr.shape[1:])
    if found_features == 0:
        raise ConfigError(
            f"{name}: expected at least one feature per sample, found shape {arr.shape}"
        )
    if n_features is not None and found_features != n_features:
        raise ConfigError(
            f"{name}: expected shape (N, {n_features}) or (N, ...) with {n_features} features "
            f"per sample as seen in fit, found shape {arr.shape} ({found_features} features)"
        )
    if channel_axis is not None:
        axis = _normalise_axis(channel_axis, arr.shape)
        if n_channels is not None and arr.shape[axis] != n_channels:
            raise ConfigError(
                f"{name}: expected {n_channels} channels along channel_axis={channel_axis} as "
                f"seen in fit, found shape {arr.shape}"
            )
    if arr.dtype.kind == "f":
        n_bad = sum(int(np.count_nonzero(~np.isfinite(arr[s]))) for s in _row_slices(len(arr)))
        if n_bad:
            raise ConfigError(
                f"{name}: expected finite values, found {n_bad} NaN or infinite entries in an "
                f"array of shape {arr.shape}"
            )
    return arr


def _flatten(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return arr.reshape(arr.shape[0], -1)  # (N, D)


def _mean(arr: npt.NDArray[Any], axes: tuple[int, ...]) -> Float64Array:
    """Mean over `axes` (axis 0 among them) in float64, dims kept for broadcasting."""
    kept = tuple(1 if a in axes else n for a, n in enumerate(arr.shape))
    total = np.zeros(kept, dtype=np.float64)
    for s in _row_slices(len(arr)):
        total += arr[s].sum(axis=axes, dtype=np.float64, keepdims=True)
    return total / math.prod(arr.shape[a] for a in axes)


def _mean_var(arr: npt.NDArray[Any], axes: tuple[int, ...]) -> tuple[Float64Array, Float64Array]:
    """Mean and population variance (ddof=0) over `axes`, two passes for accuracy."""
    mean = _mean(arr, axes)
    squares = np.zeros_like(mean)
    for s in _row_slices(len(arr)):
        squares += ((np.asarray(arr[s], dtype=np.float64) - mean) ** 2).sum(
            axis=axes, keepdims=True
        )
    return mean, squares / math.prod(arr.shape[a] for a in axes)


def _mean_cov(X2: npt.NDArray[Any]) -> tuple[Float64Array, Float64Array]:
    """Feature means (D,) and covariance (D, D) with ddof=1 of an (N, D) array, N >= 2."""
    mean = _mean(X2, (0,))[0]  # (D,)
    cov = np.zeros((X2.shape[1], X2.shape[1]), dtype=np.float64)
    for s in _row_slices(len(X2)):
        centred = np.asarray(X2[s], dtype=np.float64) - mean  # (chunk, D)
        cov += centred.T @ centred
    cov /= len(X2) - 1
    return mean, cov


def covariance(X: npt.ArrayLike) -> Float64Array:
    """Sample covariance matrix of the features, as `np.cov(X2, rowvar=False)`.

    Args:
        X: Array of shape (N, D) or (N, ...) with N >= 2; images are flattened to (N, D).

    Returns:
        Float64 array of shape (D, D), normalised by N - 1.

    Raises:
        ConfigError: as the transformers, for bad shape or non-finite values.
    """
    arr = _check_array(X, name="X", min_samples=2)
    return _mean_cov(_flatten(arr))[1]


def _map_rows(
    arr: npt.NDArray[Any],
    fn: Callable[[Float64Array], Float64Array],
    out_shape: tuple[int, ...],
    dtype: np.dtype[Any],
) -> FloatArray:
    """Apply `fn` to float64 chunks of rows of `arr` and write the results into one array."""
    out: FloatArray = np.empty(out_shape, dtype=dtype)
    for s in _row_slices(len(arr)):
        chunk = fn(np.asarray(arr[s], dtype=np.float64))
        out[s] = chunk.reshape(chunk.shape[0], *out_shape[1:])
    return out


class _ArrayTransformer(TransformerMixin, BaseEstimator):
    """Shared parts: the output dtype. Subclasses store `dtype` in `__init__`."""

    dtype: npt.DTypeLike

    def _out_dtype(self) -> np.dtype[Any]:
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as exc:
            raise ConfigError(
                f"dtype: expected a numpy floating dtype, found {self.dtype!r}"
            ) from exc
        if dtype.kind != "f":
            raise ConfigError(
                f"dtype: expected a floating dtype such as float32 or float64, found {dtype}"
            )
        return dtype


class Centering(_ArrayTransformer):
    """Mean normalisation: subtract the mean fitted on the training data.

    Args:
        axis: ``"feature"`` subtracts one mean per feature (per pixel and channel), as
            ``X - X_train.mean(axis=0)`` in the tutorial; ``"global"`` subtracts a single mean
            over every value of the training data.
        dtype: Floating dtype of the output.

    Attributes:
        mean_: Float64 array of shape (D,) for ``axis="feature"``, shape () for ``"global"``.
        n_features_in_: Features per sample D seen in fit.

    References:
        H. Jean, "Preprocessing for deep learning", section "Mean normalization".
    """

    def __init__(
        self, *, axis: Literal["feature", "global"] = "feature", dtype: npt.DTypeLike = np.float32
    ) -> None:
        self.axis = axis
        self.dtype = dtype

    def fit(self, X: npt.ArrayLike, y: object = None) -> Self:
        """Compute the training mean of `X`, shape (N, D) or (N, ...)."""
        check_in("axis", self.axis, ("feature", "global"))
        self._out_dtype()
        X2 = _flatten(_check_array(X, name="X"))
        mean = _mean(X2, (0,) if self.axis == "feature" else (0, 1))
        self.mean_: Float64Array = mean[0] if self.axis == "feature" else mean.reshape(())
        self.n_features_in_: int = X2.shape[1]
        return self

    def transform(self, X: npt.ArrayLike) -> FloatArray:
        """Return ``X - mean_`` in the shape of `X`."""
        return self._shift(X, -1.0)

    def inverse_transform(self, X: npt.ArrayLike) -> FloatArray:
        """Return ``X + mean_`` in the shape of `X`."""
        return self._shift(X, 1.0)

    def _shift(self, X: npt.ArrayLike, sign: float) -> FloatArray:
        check_is_fitted(self)
        arr = _check_array(X, name="X", n_features=self.n_features_in_)
        X2 = _flatten(arr)
        shift = sign * self.mean_
        out = _map_rows(X2, lambda c: c + shift, X2.shape, self._out_dtype())
        return out.reshape(arr.shape)


class Standardizer(_ArrayTransformer):
    """Standardisation: subtract the training mean and divide by the training standard deviation.

    Args:
        per: ``"feature"`` uses one mean and std per feature (as
            `sklearn.preprocessing.StandardScaler`); ``"channel"`` uses one mean and std per
            channel of image arrays, pooled over samples and pixels.
        channel_axis: Axis holding the channels for ``per="channel"``: -1 for (N, H, W, C),
            1 for (N, C, H, W). Ignored for ``per="feature"``.
        eps: Features (or channels) whose standard deviation is below `eps` are constant; they
            are only centred (scale 1), as StandardScaler does, instead of producing NaN or inf.
        dtype: Floating dtype of the output.

    Attributes:
        mean_: Float64 array of shape (D,) per feature, (C,) per channel.
        var_: Population variance (ddof=0), same shape as `mean_`.
        scale_: Standard deviation used as divisor, 1 where it is below `eps`.
        n_features_in_: Features per sample D seen in fit.
        n_channels_: Channels C seen in fit (``per="channel"`` only, else None).

    References:
        H. Jean, "Preprocessing for deep learning", section "Standardization".
    """

    def __init__(
        self,
        *,
        per: Literal["feature", "channel"] = "feature",
        channel_axis: int = -1,
        eps: float = 1e-8,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        self.per = per
        self.channel_axis = channel_axis
        self.eps = eps
        self.dtype = dtype

    def fit(self, X: npt.ArrayLike, y: object = None) -> Self:
        """Compute the training mean and std of `X`, shape (N, D) or (N, ...)."""
        check_in("per", self.per, ("feature", "channel"))
        eps = check_number("eps", self.eps, minimum=0)
        self._out_dtype()
        if self.per == "feature":
            X2 = _flatten(_check_array(X, name="X"))
            mean, var = _mean_var(X2, (0,))
            self.n_channels_: int | None = None
        else:
            X2 = _check_array(X, name="X", channel_axis=self.channel_axis)
            axis = _normalise_axis(self.channel_axis, X2.shape)
            mean, var = _mean_var(X2, tuple(a for a in range(X2.ndim) if a != axis))
            self.n_channels_ = X2.shape[axis]
        self.mean_: Float64Array = mean.reshape(-1)
        self.var_: Float64Array = var.reshape(-1)
        scale = np.sqrt(self.var_)
        self.scale_: Float64Array = np.where(scale < eps, 1.0, scale)
        self.n_features_in_: int = math.prod(X2.shape[1:])
        n_constant = int(np.count_nonzero(scale < eps))
        if n_constant:
            logger.debug("Standardizer: %d constant %ss are only centred", n_constant, self.per)
        return self

    def transform(self, X: npt.ArrayLike) -> FloatArray:
        """Return ``(X - mean_) / scale_`` in the shape of `X`."""
        arr, mean, scale, shape = self._prepare(X)
        return _map_rows(arr, lambda c: (c - mean) / scale, shape, self._out_dtype())

    def inverse_transform(self, X: npt.ArrayLike) -> FloatArray:
        """Return ``X * scale_ + mean_`` in the shape of `X`."""
        arr, mean, scale, shape = self._prepare(X)
        return _map_rows(arr, lambda c: c * scale + mean, shape, self._out_dtype())

    def _prepare(
        self, X: npt.ArrayLike
    ) -> tuple[npt.NDArray[Any], Float64Array, Float64Array, tuple[int, ...]]:
        """Validated array, statistics shaped to broadcast against it, and the output shape."""
        check_is_fitted(self)
        if self.n_channels_ is None:
            arr = _check_array(X, name="X", n_features=self.n_features_in_)
            return _flatten(arr), self.mean_, self.scale_, arr.shape
        arr = _check_array(X, name="X", channel_axis=self.channel_axis, n_channels=self.n_channels_)
        shape = [1] * arr.ndim  # broadcasts one value per channel over (N, ..., C, ...)
        shape[_normalise_axis(self.channel_axis, arr.shape)] = self.n_channels_
        return arr, self.mean_.reshape(shape), self.scale_.reshape(shape), arr.shape


class _Whitening(_ArrayTransformer):
    """Eigendecomposition of the training covariance shared by PCA and ZCA whitening."""

    epsilon: float

    def _fit_eigen(self, X: npt.ArrayLike, n_components: int | None) -> Float64Array:
        """Set `mean_`, `components_`, `explained_variance_`; return all eigenvectors (D, D)."""
        eps = check_number("epsilon", self.epsilon, minimum=0)
        self._out_dtype()
        arr = _check_array(X, name="X", min_samples=2)
        X2 = _flatten(arr)
        n_features = X2.shape[1]
        if n_components is not None and (
            isinstance(n_components, bool)
            or not isinstance(n_components, int | np.integer)
            or not 1 <= n_components <= n_features
        ):
            raise ConfigError(
                f"n_components: expected None or an int in 1..{n_features} for X of shape "
                f"{arr.shape}, found {n_components!r}"
            )
        mean, cov = _mean_cov(X2)
        eigvals, eigvecs = np.linalg.eigh(cov)  # ascending
        eigvals = eigvals[::-1]
        # Round-off leaves null directions (constant pixels) at +-1e-18, not 0: zero them as
        # numpy.linalg.matrix_rank does, so epsilon=0 on singular data is refused, not blown up.
        eigvals = np.where(
            eigvals > eigvals[0] * n_features * np.finfo(np.float64).eps, eigvals, 0.0
        )
        eigvecs = eigvecs[:, ::-1]
        # Fix each eigenvector's sign (largest entry positive) so PCA output is deterministic.
        rows = np.argmax(np.abs(eigvecs), axis=0)
        eigvecs = eigvecs * np.sign(eigvecs[rows, np.arange(n_features)])
        k = n_features if n_components is None else int(n_components)
        if np.any(eigvals[:k] + eps <= 0.0):
            raise ConfigError(
                f"epsilon: the covariance of X (shape {arr.shape}) has zero eigenvalues, so "
                f"whitening needs epsilon > 0, found {self.epsilon!r}"
            )
        self.mean_: Float64Array = mean
        self.components_: Float64Array = np.ascontiguousarray(eigvecs[:, :k].T)  # (k, D)
        self.explained_variance_: Float64Array = eigvals[:k]
        self.n_features_in_: int = n_features
        self.sample_shape_: tuple[int, ...] = tuple(arr.shape[1:])
        logger.debug(
            "%s: fitted on %d samples, %d features, eigenvalues %.3g..%.3g, epsilon %g",
            type(self).__name__,
            len(X2),
            n_features,
            eigvals[0],
            eigvals[-1],
            eps,
        )
        return eigvecs

    def _apply(self, X: npt.ArrayLike, inverse: bool) -> FloatArray:
        """Whiten ``(X - mean_) @ W``, or colour back ``X @ W_inv + mean_``, chunk by chunk."""
        check_is_fitted(self)
        matrix = self.dewhitening_matrix_ if inverse else self.whitening_matrix_
        arr = _check_array(X, name="X", n_features=matrix.shape[0])
        X2 = _flatten(arr)
        mean = self.mean_

        def step(chunk: Float64Array) -> Float64Array:
            return chunk @ matrix + mean if inverse else (chunk - mean) @ matrix

        out = _map_rows(X2, step, (len(X2), matrix.shape[1]), self._out_dtype())
        if matrix.shape[0] == matrix.shape[1]:
            return out.reshape(arr.shape)
        return out.reshape((len(X2), *self.sample_shape_)) if inverse else out

    def transform(self, X: npt.ArrayLike) -> FloatArray:
        """Whiten `X` with the training mean and eigenvectors."""
        return self._apply(X, inverse=False)

    def inverse_transform(self, X: npt.ArrayLike) -> FloatArray:
        """Undo the whitening: exact when every component is kept."""
        return self._apply(X, inverse=True)


class PCAWhitening(_Whitening):
    """PCA whitening: project the centred data on the eigenvectors and rescale each to unit
    variance, ``X_white = (X - mean_) U diag(1 / sqrt(S + epsilon))``.

    Args:
        epsilon: Added to every eigenvalue S before the square root; it bounds the gain on
            low-variance directions (the tutorial uses 0.1 on pixels in [0, 1]). The output
            covariance has eigenvalues S / (S + epsilon), so epsilon = 0 gives exactly identity
            covariance and needs a full-rank training covariance.
        n_components: Keep the k leading eigenvectors and return (N, k); None keeps all D and
            returns the input's shape.
        dtype: Floating dtype of the output.

    Attributes:
        mean_: Training feature means, shape (D,).
        components_: Eigenvectors of the training covariance as rows, shape (k, D), by
            decreasing eigenvalue, each with its largest entry positive.
        explained_variance_: Eigenvalues S (ddof=1 covariance), shape (k,).
        whitening_matrix_: W = U_k diag(1 / sqrt(S + epsilon)), shape (D, k); output is
            ``(X - mean_) @ W``.
        dewhitening_matrix_: diag(sqrt(S + epsilon)) U_k^T, shape (k, D), used by
            `inverse_transform`.
        n_features_in_: Features per sample D seen in fit.
        sample_shape_: Shape of one training sample, restored by `inverse_transform`.

    References:
        H. Jean, "Preprocessing for deep learning", section "Whitening".
        A. Kessy, A. Lewin and K. Strimmer, "Optimal whitening and decorrelation", 2018.
    """

    def __init__(
        self,
        *,
        epsilon: float = 0.1,
        n_components: int | None = None,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        self.epsilon = epsilon
        self.n_components = n_components
        self.dtype = dtype

    def fit(self, X: npt.ArrayLike, y: object = None) -> Self:
        """Fit mean and eigenvectors on `X`, shape (N, D) or (N, ...), N >= 2."""
        self._fit_eigen(X, self.n_components)
        root = np.sqrt(self.explained_variance_ + float(self.epsilon))  # (k,)
        self.whitening_matrix_: Float64Array = self.components_.T / root  # (D, k)
        self.dewhitening_matrix_: Float64Array = self.components_ * root[:, None]  # (k, D)
        return self


class ZCAWhitening(_Whitening):
    """ZCA (Mahalanobis) whitening: PCA whitening rotated back to pixel space,
    ``X_white = (X - mean_) U diag(1 / sqrt(S + epsilon)) U^T``.

    Of all whitening transforms ZCA keeps the output closest to the input, so whitened images
    still look like (edge-enhanced) images. Its matrix is symmetric.

    Args:
        epsilon: Added to every eigenvalue before the square root (see `PCAWhitening`).
        dtype: Floating dtype of the output.

    Attributes:
        mean_: Training feature means, shape (D,).
        components_: Eigenvectors of the training covariance as rows, shape (D, D).
        explained_variance_: Eigenvalues S, shape (D,).
        whitening_matrix_: Symmetric W = U diag(1 / sqrt(S + epsilon)) U^T, shape (D, D).
        dewhitening_matrix_: U diag(sqrt(S + epsilon)) U^T, shape (D, D).
        n_features_in_: Features per sample D seen in fit.
        sample_shape_: Shape of one training sample.

    References:
        A. J. Bell and T. J. Sejnowski, "The 'independent components' of natural scenes are
        edge filters", 1997.
        H. Jean, "Preprocessing for deep learning", section "Whitening" (ZCA on CIFAR-10).
    """

    def __init__(self, *, epsilon: float = 0.1, dtype: npt.DTypeLike = np.float32) -> None:
        self.epsilon = epsilon
        self.dtype = dtype

    def fit(self, X: npt.ArrayLike, y: object = None) -> Self:
        """Fit mean and eigenvectors on `X`, shape (N, D) or (N, ...), N >= 2."""
        eigvecs = self._fit_eigen(X, None)  # (D, D)
        root = np.sqrt(self.explained_variance_ + float(self.epsilon))  # (D,)
        whiten = (eigvecs / root) @ eigvecs.T
        colour = (eigvecs * root) @ eigvecs.T
        # Exactly symmetric: BLAS round-off would otherwise leave W != W.T in the last bit.
        self.whitening_matrix_: Float64Array = (whiten + whiten.T) / 2
        self.dewhitening_matrix_: Float64Array = (colour + colour.T) / 2
        return self
