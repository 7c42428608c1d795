"""Exact k-NN: predictions and distances against a float64 brute-force oracle."""

from __future__ import annotations

import shutil
import sysconfig

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from advlab.classic import knn
from advlab.classic.knn import KNNClassifier, nearest_neighbors, vote
from advlab.errors import KNNError
from conftest import require_data


def oracle(X: np.ndarray, Q: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 brute force; ties to the lower index (stable sort)."""
    diff = Q.astype(np.float64)[:, None, :] - X.astype(np.float64)[None]
    dist = np.abs(diff).sum(-1) if metric == "l1" else np.sqrt((diff * diff).sum(-1))
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, order, 1), order


def adversarial_data(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training/query sets full of exact duplicates, equidistant points and near-ties."""
    X = rng.integers(0, 256, (1500, 67))
    X[:, 5] = 9  # a constant column
    X[300:600] = X[:300]  # duplicated training points: distance ties
    Q = rng.integers(0, 256, (120, 67))
    Q[:30] = X[:30]  # queries that sit on duplicated training points
    # queries exactly between two training points: a +1/-1 step apart in one pixel
    Q[30:60] = X[600:630]
    Q[30:60, 0] = np.clip(Q[30:60, 0], 1, 254)
    X[630:660] = Q[30:60]
    X[630:660, 0] += 1
    X[660:690] = Q[30:60]
    X[660:690, 0] -= 1
    if kind == "u8":
        return X.astype(np.uint8), Q.astype(np.uint8)
    if kind == "f32":
        return (X / 13.0).astype(np.float32), (Q / 13.0).astype(np.float32)
    # float64 far from the origin with near-ties below float32 resolution
    Xf, Qf = X / 13.0 + 500.0, Q / 13.0 + 500.0
    Xf[690:720] = Qf[60:90] + 1e-9
    Xf[720:750] = Qf[60:90] - 2e-9
    return Xf, Qf


@pytest.mark.parametrize("kind", ["u8", "f32", "f64"])
@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_matches_float64_oracle(kind: str, metric: str, k: int) -> None:
    X, Q = adversarial_data(kind, np.random.default_rng(k))
    # a 1 MiB budget forces several training chunks and a merge
    got = nearest_neighbors(X, Q, k, metric, memory_budget=2**20)
    ref_d, ref_i = oracle(X, Q, k, metric)
    np.testing.assert_array_equal(got.indices, ref_i)
    np.testing.assert_allclose(got.distances, ref_d, rtol=1e-12, atol=1e-9)


def test_near_ties_below_float32_resolution_are_resolved_in_float64() -> None:
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(4, 30)) + 300.0
    # per query 20 training points within 1e-8 of it (more than k + RERANK_MARGIN), all equal
    # in float32, with the nearest one hidden in the middle of the block
    steps = np.linspace(5e-9, 1e-8, 20)[rng.permutation(20)]
    X = np.concatenate([q + steps[:, None] * np.sign(rng.normal(size=30)) for q in Q])
    X = np.concatenate([rng.normal(size=(500, 30)) + 300.0, X])
    got = nearest_neighbors(X, Q, 3, "l2")
    _, ref_i = oracle(X, Q, 3, "l2")
    np.testing.assert_array_equal(got.indices, ref_i)
    assert got.n_fallback == 4  # every query needed the float64 search
    # The classifier returns the count with its result and keeps nothing of the call.
    clf = KNNClassifier(k=3).fit(X, np.arange(len(X)) % 3)
    before = dict(vars(clf))
    nb = clf.neighbors(Q)
    dist, ind = clf.kneighbors(Q)
    clf.predict(Q), clf.predict_proba(Q), clf.score(Q, np.zeros(len(Q), dtype=int))
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[k] is v for k, v in before.items())
    assert nb.n_fallback == 4  # what the removed `last_fallbacks_` attribute held
    np.testing.assert_array_equal(nb.indices, ref_i)
    np.testing.assert_array_equal(ind, nb.indices)
    np.testing.assert_array_equal(dist, nb.distances)
    assert clf.neighbors(Q, n_neighbors=1).indices.shape == (4, 1)


@pytest.mark.skipif(knn._l1 is None, reason="C kernel not built")
def test_simd_kernel_equals_scalar_kernel() -> None:
    rng = np.random.default_rng(3)
    for nq, nx in [(1, 1), (5, 7), (9, 1000)]:
        q = rng.integers(0, 256, (nq, 128)).astype(np.uint8)
        x = rng.integers(0, 256, (nx, 128)).astype(np.uint8)
        a, b = np.empty((nq, nx), np.int32), np.empty((nq, nx), np.int32)
        knn._l1.l1_u8(q, x, a, nq, nx, 128)
        knn._l1.l1_u8_scalar(q, x, b, nq, nx, 128)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, np.abs(q[:, None].astype(int) - x[None]).sum(-1))
        qf, xf = q.astype(np.float32), x.astype(np.float32)
        fa, fb = np.empty((nq, nx), np.float32), np.empty((nq, nx), np.float32)
        knn._l1.l1_f32(qf, xf, fa, nq, nx, 128)
        knn._l1.l1_f32_scalar(qf, xf, fb, nq, nx, 128)
        np.testing.assert_array_equal(fa, a)  # integer sums below 2^24 are exact in float32
        np.testing.assert_array_equal(fb, a)
    with pytest.raises(ValueError, match="multiple of the kernel width"):
        knn._l1.l1_u8(q, x, a, 9, 1000, 100)


def test_kernel_is_built_where_a_compiler_exists() -> None:
    if shutil.which(sysconfig.get_config_var("CC").split()[0] or "cc") is None:
        pytest.skip("no C compiler: the torch fallback is used")
    assert knn._l1 is not None, "advlab.classic._l1 should have been compiled at install"
    assert knn.kernel_isa() in {"avx512", "avx2", "scalar"}


def test_vote_tie_rule() -> None:
    # k=5: classes 1 and 3 tie with two votes each; the nearest neighbour among them is class 1
    labels = np.array([[2, 1, 3, 3, 1], [6, 5, 5, 6, 0], [4, 1, 2, 3, 0], [3, 3, 1, 1, 1]])
    winner, proba = vote(labels, 7)
    np.testing.assert_array_equal(winner, [1, 6, 4, 1])
    np.testing.assert_allclose(proba[0], [0, 0.4, 0.2, 0.4, 0, 0, 0])


def test_sklearn_api_and_agreement_on_digits() -> None:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.uint8)
    Xtr, ytr, Xte, yte = X[:1200], y[:1200], X[1200:], y[1200:]
    for metric, sk_metric in [("l1", "manhattan"), ("l2", "euclidean")]:
        ours = KNNClassifier(k=3, metric=metric).fit(Xtr, ytr)
        theirs = KNeighborsClassifier(3, metric=sk_metric, algorithm="brute").fit(Xtr, ytr)
        d_ours, _ = ours.kneighbors(Xte)
        d_theirs, _ = theirs.kneighbors(Xte)
        np.testing.assert_allclose(d_ours, d_theirs, rtol=1e-9)
        # predictions agree except where the vote or the distances tie
        agree = (ours.predict(Xte) == theirs.predict(Xte)).mean()
        assert agree > 0.99
        assert 0.95 < ours.score(Xte, yte) <= 1.0
        proba = ours.predict_proba(Xte)
        np.testing.assert_allclose(proba.sum(1), 1.0)
        pred = np.searchsorted(ours.classes_, ours.predict(Xte))
        np.testing.assert_array_equal(proba[np.arange(len(pred)), pred], proba.max(1))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: KNNClassifier(metric="cosine").fit(np.ones((3, 2)), [0, 1, 1]),
            r"^metric: expected one of l1, l2, found 'cosine'$",
        ),
        (lambda: KNNClassifier(k=4).fit(np.eye(3), [0, 1, 1]), "at most the number of training"),
        (
            lambda: KNNClassifier(k=0).fit(np.eye(3), [0, 1, 1]),
            r"^k: expected an int >= 1, found 0$",
        ),
        (
            lambda: KNNClassifier().fit(np.eye(3), [0, 1, 1]).predict(np.ones((2, 4))),
            "expected 3 features",
        ),
        (lambda: KNNClassifier().fit(np.array([[0.0, np.nan]]), [0]), "NaN/inf"),
        (
            lambda: KNNClassifier().fit(np.eye(2), [0, 1]).predict(np.array([[np.inf, 0.0]])),
            "NaN/inf",
        ),
        (lambda: KNNClassifier().fit(np.zeros((0, 3)), []), "at least one sample"),
        (
            lambda: KNNClassifier().fit(np.eye(2), [0, 1]).predict(np.zeros((0, 2))),
            "at least one sample",
        ),
        (lambda: KNNClassifier().fit(np.eye(2), [0, 1, 1]), "one per row"),
        (lambda: KNNClassifier().predict(np.eye(2)), "call fit"),
    ],
)
def test_bad_input_gets_one_clear_error(call, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KNNError, match=message):
        call()


def test_real_mnist_slice_matches_oracle() -> None:
    require_data("mnist")
    from advlab.data.registry import load_dataset

    tr = load_dataset("mnist", split="train").take(3000, seed=0)
    te = load_dataset("mnist", split="test").take(300, seed=0)
    X, Q = tr.images.reshape(3000, -1), te.images.reshape(300, -1)
    for metric in ("l1", "l2"):
        got = nearest_neighbors(X, Q, 3, metric)
        ref_d, ref_i = oracle(X, Q, 3, metric)
        np.testing.assert_array_equal(got.indices, ref_i)
        np.testing.assert_allclose(got.distances, ref_d, rtol=1e-12)
        acc = (tr.labels[got.indices[:, 0]] == te.labels).mean()
        assert 0.85 < acc < 0.97  # 1-NN on 3,000 training digits


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_wraparound_distances_are_the_notebooks(metric: str) -> None:
    rng = np.random.default_rng(5)
    Xtr = rng.integers(0, 256, (300, 100)).astype(np.uint8)
    x = rng.integers(0, 256, (3, 100)).astype(np.uint8)
    for i in range(3):  # the lab notebook's lines, verbatim, on uint8 arrays
        if metric == "l1":
            expected = np.sum(np.abs(Xtr - x[i, :]), axis=1)
        else:
            expected = np.sqrt(np.sum(np.square(Xtr - x[i, :]), axis=1))
        np.testing.assert_allclose(knn.uint8_wraparound_distances(Xtr, x, metric)[i], expected)
    honest = np.abs(Xtr.astype(int) - x[0].astype(int)).sum(1)
    assert (knn.uint8_wraparound_distances(Xtr, x[0], "l1") != honest).mean() > 0.9


def test_select_k_and_accuracy_by_k() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    X, y = load_digits(return_X_y=True)
    X, y = X[:600].astype(np.uint8), y[:600]
    sel = knn.select_k(X, y, (1, 2, 3, 6), "l2", folds=3, seed=0)
    assert sel.fold_accuracy.shape == (3, 4)
    # each fold's accuracy is scikit-learn's on the same split, up to a 1-1-1 vote tie
    # (scikit-learn gives it to the smallest label, advlab to the nearest neighbour's)
    ref = cross_val_score(
        KNeighborsClassifier(3, algorithm="brute"),
        X,
        y,
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    )
    np.testing.assert_allclose(sel.fold_accuracy[:, 2], ref, atol=1.01 / 200)
    assert (sel.fold_accuracy[:, 2] == ref).sum() >= 2
    assert sel.best_k == (1, 2, 3, 6)[int(np.argmax(sel.mean))]
    # k=1 and k=2 agree exactly under the tie rule (a 1-1 tie goes to the nearest neighbour)
    np.testing.assert_array_equal(sel.fold_accuracy[:, 0], sel.fold_accuracy[:, 1])
    with pytest.raises(KNNError, match="at most 2 neighbours"):
        knn.accuracy_by_k(np.zeros((4, 2), dtype=np.int64), np.zeros(4), [1, 3], 10)
