"""Tests of advlab.data.preprocess against numpy and scikit-learn oracles.

Data: synthetic correlated Gaussians with a known spectrum, and scikit-learn's bundled digits
(1797 images of 8x8, values 0..16, no download) as real images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from advlab.data.preprocess import (
    Centering,
    PCAWhitening,
    Standardizer,
    ZCAWhitening,
    covariance,
)
from advlab.errors import ConfigError

F64 = np.float64


@pytest.fixture(scope="module")
def digits() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    bunch = load_digits()
    return bunch.images / 16.0, bunch.target  # (1797, 8, 8) in [0, 1]


@pytest.fixture(scope="module")
def correlated() -> npt.NDArray[np.float64]:
    """(2000, 8) Gaussian data whose population covariance has eigenvalues 9 .. 0.0025."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    scales = np.array([3.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1, 0.05])
    return rng.normal(size=(2000, 8)) @ (scales[:, None] * rotation) + rng.normal(size=8)


def _pearson_per_row(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(axis=1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


# --- covariance -------------------------------------------------------------------------------


def test_covariance_matches_numpy_for_uint8_images(digits: Any) -> None:
    images = (digits[0] * 16).astype(np.uint8)  # (N, 8, 8) uint8
    expected = np.cov(images.reshape(len(images), -1).astype(F64), rowvar=False)
    np.testing.assert_allclose(covariance(images), expected, rtol=1e-12, atol=1e-12)


# --- Centering --------------------------------------------------------------------------------


def test_centering_uses_train_mean(digits: Any) -> None:
    images = (digits[0] * 16).astype(np.uint8)  # uint8 pixels, (N, 8, 8)
    train, test = images[:1200], images[1200:]
    centring = Centering().fit(train)
    out_train, out_test = centring.transform(train), centring.transform(test)
    assert out_train.shape == train.shape and out_train.dtype == np.float32
    np.testing.assert_allclose(out_train.mean(axis=0, dtype=F64), 0.0, atol=1e-6)
    train_mean = train.astype(F64).mean(axis=0)  # (8, 8)
    np.testing.assert_allclose(out_test, test - train_mean, atol=1e-5)
    assert abs(out_test.mean()) > 1e-3  # the test set is not centred on its own mean
    np.testing.assert_allclose(centring.inverse_transform(out_test), test, atol=1e-5)


def test_centering_global_subtracts_one_mean(correlated: Any) -> None:
    centring = Centering(axis="global", dtype=F64).fit(correlated)
    assert centring.mean_.shape == ()
    np.testing.assert_allclose(centring.transform(correlated), correlated - correlated.mean())


# --- Standardizer -----------------------------------------------------------------------------


def test_standardizer_per_feature_matches_standard_scaler(digits: Any) -> None:
    data = digits[0].reshape(len(digits[0]), -1)  # (N, 64), several pixels always 0
    train, test = data[:1200], data[1200:]
    assert np.any(train.std(axis=0) == 0)
    ours = Standardizer(dtype=F64).fit(train)
    oracle = StandardScaler().fit(train)
    for split in (train, test):
        out = ours.transform(split)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, oracle.transform(split), atol=1e-10)
    np.testing.assert_allclose(ours.scale_, oracle.scale_, rtol=1e-12)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(test)), test, atol=1e-12)


@pytest.mark.parametrize(("layout", "channel_axis"), [("nhwc", -1), ("nchw", 1)])
def test_standardizer_per_channel(layout: str, channel_axis: int) -> None:
    rng = np.random.default_rng(1)
    means, stds = np.array([0.2, 0.5, 0.8]), np.array([0.05, 0.1, 0.3])
    images = rng.normal(size=(64, 6, 5, 3)) * stds + means  # (N, H, W, C)
    if layout == "nchw":
        images = images.transpose(0, 3, 1, 2)  # (N, C, H, W)
    reduce = (0, 1, 2) if layout == "nhwc" else (0, 2, 3)
    std = Standardizer(per="channel", channel_axis=channel_axis, dtype=F64).fit(images)
    out = std.transform(images)
    assert out.shape == images.shape
    np.testing.assert_allclose(std.mean_, images.mean(axis=reduce), rtol=1e-12)
    np.testing.assert_allclose(std.scale_, images.std(axis=reduce), rtol=1e-12)
    np.testing.assert_allclose(out.mean(axis=reduce), 0.0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=reduce), 1.0, atol=1e-10)
    np.testing.assert_allclose(std.inverse_transform(out), images, atol=1e-12)


# --- PCA and ZCA whitening --------------------------------------------------------------------


@pytest.mark.parametrize("cls", [PCAWhitening, ZCAWhitening])
def test_tiny_epsilon_gives_identity_covariance(cls: type, correlated: Any) -> None:
    out = cls(epsilon=1e-8, dtype=F64).fit_transform(correlated)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.eye(8), atol=1e-5)


@pytest.mark.parametrize("cls", [PCAWhitening, ZCAWhitening])
def test_epsilon_shrinks_eigenvalues_to_s_over_s_plus_eps(cls: type, correlated: Any) -> None:
    eigvals = np.linalg.eigvalsh(np.cov(correlated, rowvar=False))[::-1]  # oracle S, descending
    whitening = cls(epsilon=0.1, dtype=F64).fit(correlated)
    np.testing.assert_allclose(whitening.explained_variance_, eigvals, rtol=1e-10)
    out_eigvals = np.linalg.eigvalsh(covariance(whitening.transform(correlated)))[::-1]
    expected = eigvals / (eigvals + 0.1)  # from about 0.99 down to about 0.025
    np.testing.assert_allclose(out_eigvals, expected, rtol=1e-8)


def test_pca_whitening_matches_sklearn_pca_whiten(correlated: Any) -> None:
    ours = PCAWhitening(epsilon=0.0, n_components=5, dtype=F64).fit(correlated)
    oracle = PCA(n_components=5, whiten=True, svd_solver="full").fit(correlated)
    out, expected = ours.transform(correlated), oracle.transform(correlated)
    signs = np.sign((out * expected).sum(axis=0))  # eigenvectors are defined up to sign
    np.testing.assert_allclose(out, expected * signs, atol=1e-8)
    np.testing.assert_allclose(ours.explained_variance_, oracle.explained_variance_, rtol=1e-10)
    assert ours.components_.shape == (5, 8) and ours.whitening_matrix_.shape == (8, 5)


def test_zca_matrix_is_symmetric(digits: Any) -> None:
    zca = ZCAWhitening().fit(digits[0])
    w = zca.whitening_matrix_
    assert w.shape == (64, 64)
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_allclose(w @ zca.dewhitening_matrix_, np.eye(64), atol=1e-8)


def test_zca_output_stays_image_like_pca_does_not(digits: Any) -> None:
    images = digits[0]  # (N, 8, 8) in [0, 1]
    centred = images - images.mean(axis=0)
    zca_out = ZCAWhitening(epsilon=0.1).fit_transform(images)
    pca_out = PCAWhitening(epsilon=0.1).fit_transform(images)
    assert zca_out.shape == pca_out.shape == images.shape
    zca_corr = _pearson_per_row(zca_out, centred)
    pca_corr = _pearson_per_row(pca_out, centred)
    # Measured on digits/16 with epsilon 0.1: ZCA mean 0.950 (min 0.919); PCA mean -0.020,
    # mean |r| 0.092.
    assert 0.90 < zca_corr.mean() < 0.99
    assert zca_corr.min() > 0.85
    assert np.abs(pca_corr).mean() < 0.2


@pytest.mark.parametrize("cls", [PCAWhitening, ZCAWhitening])
def test_inverse_transform_round_trips(cls: type, digits: Any) -> None:
    images = digits[0]  # singular covariance (constant pixels): epsilon > 0 keeps it invertible
    whitening = cls(epsilon=0.1, dtype=F64).fit(images)
    np.testing.assert_allclose(
        whitening.inverse_transform(whitening.transform(images)), images, atol=1e-6
    )


def test_pca_with_components_reconstructs_like_sklearn(digits: Any) -> None:
    images = digits[0]
    flat = images.reshape(len(images), -1)
    ours = PCAWhitening(epsilon=0.1, n_components=10, dtype=F64).fit(images)
    reduced = ours.transform(images)
    assert reduced.shape == (len(images), 10)
    restored = ours.inverse_transform(reduced)
    assert restored.shape == images.shape
    oracle = PCA(n_components=10, svd_solver="full").fit(flat)
    expected = oracle.inverse_transform(oracle.transform(flat)).reshape(images.shape)
    np.testing.assert_allclose(restored, expected, atol=1e-8)


# --- scikit-learn integration ----------------------------------------------------------------


def test_zca_in_pipeline_with_logistic_regression(digits: Any) -> None:
    images, target = digits
    flat = images.reshape(len(images), -1)
    x_train, x_test, y_train, y_test = train_test_split(
        flat, target, test_size=0.3, random_state=0, stratify=target
    )
    pipe = make_pipeline(ZCAWhitening(), LogisticRegression(max_iter=2000))
    accuracy = pipe.fit(x_train, y_train).score(x_test, y_test)
    # Measured 0.9685 (split seed 0); 0.959..0.969 over split seeds 0..4.
    assert 0.95 <= accuracy <= 0.99


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        (Centering, {"axis": "global", "dtype": np.float64}),
        (Standardizer, {"per": "channel", "channel_axis": 1, "eps": 1e-6, "dtype": "float64"}),
        (PCAWhitening, {"epsilon": 0.05, "n_components": 3, "dtype": np.float32}),
        (ZCAWhitening, {"epsilon": 0.2, "dtype": np.float64}),
    ],
)
def test_get_params_and_clone(estimator: type, params: dict[str, Any], correlated: Any) -> None:
    original = estimator(**params)
    assert original.get_params() == params
    fitted = original.fit(correlated.reshape(len(correlated), 2, 4))
    copy = clone(fitted)
    assert copy.get_params() == params
    assert not hasattr(copy, "mean_")


# --- bad input --------------------------------------------------------------------------------

ALL_TRANSFORMERS = [Centering, Standardizer, PCAWhitening, ZCAWhitening]


@pytest.mark.parametrize("cls", ALL_TRANSFORMERS)
def test_rejects_one_dimensional_input(cls: type) -> None:
    with pytest.raises(ConfigError, match=r"X: expected an array of rank >= 2.*shape \(64,\)"):
        cls().fit(np.zeros(64))


@pytest.mark.parametrize("cls", ALL_TRANSFORMERS)
def test_rejects_nan(cls: type, correlated: Any) -> None:
    bad = correlated.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ConfigError, match=r"X: expected finite values, found 1 NaN"):
        cls().fit(bad)
    fitted = cls().fit(correlated)
    bad[5, 1] = np.inf
    with pytest.raises(ConfigError, match=r"found 2 NaN or infinite entries.*\(2000, 8\)"):
        fitted.transform(bad)


@pytest.mark.parametrize("cls", ALL_TRANSFORMERS)
def test_rejects_wrong_feature_count(cls: type, digits: Any) -> None:
    fitted = cls().fit(digits[0])  # (N, 8, 8): 64 features
    with pytest.raises(ConfigError, match=r"expected shape \(N, 64\).*found shape \(5, 63\)"):
        fitted.transform(np.zeros((5, 63)))
    assert fitted.transform(np.zeros((5, 64))).shape == (5, 64)  # any layout of 64 features


def test_standardizer_rejects_wrong_channel_count() -> None:
    std = Standardizer(per="channel").fit(np.ones((4, 2, 2, 3)))
    with pytest.raises(ConfigError, match=r"expected 3 channels.*found shape \(4, 2, 2, 4\)"):
        std.transform(np.ones((4, 2, 2, 4)))


@pytest.mark.parametrize(
    ("estimator", "match"),
    [
        (Centering(axis="sample"), r"axis: expected one of"),  # type: ignore[arg-type]
        (Standardizer(per="channel", channel_axis=0), r"channel_axis: expected an axis in 1\.\.2"),
        (Standardizer(eps=-1.0), r"eps: expected a finite number >= 0, found -1\.0"),
        (PCAWhitening(epsilon=-0.1), r"epsilon: expected a finite number >= 0"),
        (PCAWhitening(n_components=65), r"n_components: expected None or an int in 1\.\.64"),
        (PCAWhitening(epsilon=0.0), r"epsilon: the covariance of X .* has zero eigenvalues"),
        (ZCAWhitening(dtype=np.int32), r"dtype: expected a floating dtype.*found int32"),
    ],
)
def test_rejects_bad_parameters(estimator: Any, match: str, digits: Any) -> None:
    with pytest.raises(ConfigError, match=match):
        estimator.fit(digits[0])  # (N, 8, 8), some pixels always 0: singular covariance


def test_transform_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        ZCAWhitening().transform(np.zeros((2, 3)))


@pytest.mark.parametrize("step", [Centering(), Standardizer(), PCAWhitening(), ZCAWhitening()])
def test_image_shape_kept(step: object) -> None:
    x = np.random.default_rng(0).random((50, 6, 6, 1)).astype(np.float32)
    out = step.fit(x).transform(x[:4])  # type: ignore[attr-defined]
    assert out.shape == (4, 6, 6, 1)
    back = step.inverse_transform(out)  # type: ignore[attr-defined]
    assert back.shape == (4, 6, 6, 1)
