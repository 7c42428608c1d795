"""Exact k-nearest neighbours under L1 and L2, fast on a CPU and on CUDA.

`KNNClassifier` follows the scikit-learn estimator API (fit, predict, predict_proba,
kneighbors, score; `neighbors` gives the search's whole `Neighbors` result);
`nearest_neighbors` is the search underneath, usable on its own.

How the search stays exact and fast:

* uint8 inputs on the CPU (MNIST as the data layer hands it over) are searched in exact integer
  arithmetic: L2 through the expansion ||a||^2 - 2ab + ||b||^2 with an int8 x int8 -> int32 matrix
  product (pixels shifted by 128, corrections added back), L1 through advlab's C kernel, which
  uses the SAD instruction (AVX-512 or AVX2, chosen when the module loads). No rounding anywhere,
  so the ranking is exactly that of a float64 brute force.
* Other inputs (and every input on CUDA) are searched in float32 - GEMM expansion for L2, the
  float C kernel or ``torch.cdist`` for L1 - for the best ``k + margin`` candidates; those are
  re-ranked with float64 distances computed directly, and a rigorous bound on the float32 error
  checks that nothing outside the candidates could belong in the top k. Queries that fail the
  check (near-ties within rounding error) are searched again entirely in float64.
* Feature columns that are constant over the training set add the same amount to every distance
  of a query, so they are dropped from the search and added back to the reported distances.
* Work is chunked over queries and training rows with sizes derived from ``memory_budget``.

Tie-breaking (documented, deterministic):

* distance ties: the training point with the lower index comes first;
* vote ties (k > 1, uniform votes): among the classes with the most votes, the class of the
  nearest neighbour that belongs to one of them wins - the same answer as shrinking k until the
  tie breaks.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from advlab.errors import KNNError
from advlab.progress import progress
from advlab.validation import check_in, check_int

try:  # the compiled kernel is optional: without a C compiler the install falls back to torch
    from advlab.classic import _l1  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised only on installs without the extension
    _l1 = None

Metric = Literal["l1", "l2"]
METRICS: tuple[str, ...] = ("l1", "l2")

#: Candidates kept beyond k in the float32 pass, re-ranked in float64.
RERANK_MARGIN = 8
_U32 = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32
_DEFAULT_BUDGET = 512 * 2**20


def kernel_isa() -> str:
    """Instruction set the compiled L1 kernel uses here ('avx512', 'avx2', 'scalar'), or 'torch'."""
    return str(_l1.ISA) if _l1 is not None else "torch"


@dataclass(frozen=True)
class Neighbors:
    """The k nearest training rows of each query: distances (float64) and indices, nearest first.

    Distances are the metric itself (L1 sum, or Euclidean norm for L2), not squared.
    """

    distances: npt.NDArray[np.float64]
    indices: npt.NDArray[np.int64]
    #: Queries whose float32 pass was too close to call and were searched in float64 instead.
    n_fallback: int = 0


# ---------------------------------------------------------------------------------------------
# input checks


def _as_2d(X: Any, name: str) -> npt.NDArray[Any]:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    arr = np.asarray(X)
    if arr.ndim == 1 and name == "X":
        raise KNNError(
            f"{name}: expected a 2-D array (n_samples, n_features), "
            f"found shape {arr.shape}; "
            "reshape a single sample with X.reshape(1, -1)"
        )
    if arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2:
        raise KNNError(
            f"{name}: expected a 2-D array (n_samples, n_features), found shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise KNNError(
            f"{name}: expected at least one sample and one feature, found shape {arr.shape}"
        )
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "biuf":
        raise KNNError(f"{name}: expected numbers, found dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise KNNError(
                f"{name}: expected finite values, found {int(bad.sum())} NaN/inf "
                f"(first in row {row})"
            )
    if arr.dtype.kind in "iu" and arr.size and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8)
    return arr.astype(np.float64, copy=False) if arr.dtype.kind != "f" else arr


def _check_k(k: Any, n_train: int) -> int:
    k = check_int("k", k, minimum=1, error=KNNError)
    if k > n_train:
        raise KNNError(f"k: expected at most the number of training samples ({n_train}), found {k}")
    return int(k)


# ---------------------------------------------------------------------------------------------
# the prepared training set


@dataclass
class _Index:
    """Training rows in the layouts the search kernels want, built once by `fit`."""

    metric: str
    device: torch.device
    integer: bool  # exact integer path (uint8 data, CPU)
    keep: npt.NDArray[np.intp]  # feature columns that vary over the training set
    const_cols: npt.NDArray[np.intp]  # feature columns constant over the training set
    const: npt.NDArray[np.float64]  # their values
    n: int
    d: int  # kept columns
    X: npt.NDArray[Any]  # kept columns, original dtype (for float64 re-ranking)
    # integer L2
    xt_i8: torch.Tensor | None = None  # (d, n) int8, pixels - 128
    col_i32: torch.Tensor | None = None  # ||b||^2 - 256 * sum(b - 128)
    # L1 C kernel
    padded: npt.NDArray[Any] | None = None  # (n, dp) rows padded with zeros
    # float32 torch search
    xf: torch.Tensor | None = None  # (n, d) float32 on device
    norms: torch.Tensor | None = None  # ||b||^2 float32 on device (L2)
    # float paths search translated data (distances do not change), which keeps float32 error small
    shift: npt.NDArray[np.float64] | None = None
    exact_f32: bool = False  # training values are exact in float32 (and were not shifted)


def _pad_width(d: int, unit: int) -> int:
    return -(-d // unit) * unit


def _shift_to_int8(X: npt.NDArray[np.uint8]) -> npt.NDArray[np.int8]:
    """u - 128 as int8 for uint8 u, in one pass: flipping the top bit is that subtraction."""
    return np.bitwise_xor(X, np.uint8(0x80)).view(np.int8)


def _shifted_f32(X: npt.NDArray[Any], shift: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """X - shift rounded once to float32, computed in float64 blocks."""
    out = np.empty(X.shape, dtype=np.float32)
    for s in range(0, X.shape[0], 8192):
        out[s : s + 8192] = X[s : s + 8192].astype(np.float64) - shift
    return out


def _build_index(X: npt.NDArray[Any], metric: str, device: torch.device) -> _Index:
    keep = np.flatnonzero(np.not_equal(X, X[0]).any(axis=0))
    if keep.size == 0:  # every column constant: keep one so the kernels have something to do
        keep = np.array([0], dtype=np.intp)
    const_cols = np.setdiff1d(np.arange(X.shape[1]), keep)
    Xk = np.ascontiguousarray(X[:, keep])
    n, d = Xk.shape
    integer = X.dtype == np.uint8 and device.type == "cpu" and d <= 16000
    index = _Index(
        metric=metric,
        device=device,
        integer=integer,
        keep=keep,
        const_cols=const_cols,
        const=X[0, const_cols].astype(np.float64),
        n=n,
        d=d,
        X=Xk,
    )
    if integer and metric == "l2":
        v = _shift_to_int8(Xk)
        index.xt_i8 = torch.from_numpy(np.ascontiguousarray(v.T))
        col = np.square(Xk, dtype=np.uint16).sum(1, dtype=np.int64) - 256 * v.sum(1, dtype=np.int64)
        index.col_i32 = torch.from_numpy(col.astype(np.int32))
        return index
    if integer and metric == "l1" and _l1 is not None:
        index.padded = np.zeros((n, _pad_width(d, 64)), dtype=np.uint8)
        index.padded[:, :d] = Xk
        return index
    index.integer = False
    if metric == "l1" and device.type == "cpu" and _l1 is None:
        warnings.warn(
            "advlab.classic._l1 is not built (no C compiler at install?): exact L1 "
            "k-NN falls back to torch.cdist, about 40x slower",
            RuntimeWarning,
            stacklevel=3,
        )
    # L2's expansion loses precision far from the origin: search translated data. L1 has no
    # cancellation, and float32 inputs stay exact without a shift.
    index.shift = Xk.mean(0, dtype=np.float64) if metric == "l2" else np.zeros(d)
    index.exact_f32 = metric == "l1" and _exact_in_f32(Xk)
    xs = _shifted_f32(Xk, index.shift)
    if metric == "l1" and device.type == "cpu" and _l1 is not None:
        index.padded = np.zeros((n, _pad_width(d, 16)), dtype=np.float32)
        index.padded[:, :d] = xs
        return index
    xf = torch.from_numpy(xs).to(device)
    index.xf = xf
    if metric == "l2":
        index.norms = (xf * xf).sum(1)
    return index


# ---------------------------------------------------------------------------------------------
# exact helpers


def _exact_dist(Q: npt.NDArray[Any], X: npt.NDArray[Any], metric: str) -> npt.NDArray[np.float64]:
    """float64 distances of each query row to its own candidates: Q (q, d), X (q, c, d)."""
    diff = X.astype(np.float64) - Q.astype(np.float64)[:, None, :]
    if metric == "l1":
        return np.abs(diff).sum(-1)
    return np.einsum("qcd,qcd->qc", diff, diff)


def _merge(
    dist: npt.NDArray[np.float64], idx: npt.NDArray[np.int64], k: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Per row, the k smallest (distance, index) pairs in lexicographic order."""
    order = np.lexsort((idx, dist), axis=-1)[:, :k]
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def _brute_rows(
    Q: npt.NDArray[Any], X: npt.NDArray[Any], k: int, metric: str, budget: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """float64 brute force for a few queries, chunked over training rows."""
    step = max(1, budget // max(1, 8 * Q.shape[0] * X.shape[1]))
    best_d = np.full((Q.shape[0], 0), np.inf)
    best_i = np.zeros((Q.shape[0], 0), dtype=np.int64)
    for s in range(0, X.shape[0], step):
        chunk = X[s : s + step]
        dist = _exact_dist(Q, np.broadcast_to(chunk, (Q.shape[0], *chunk.shape)), metric)
        ids = np.broadcast_to(np.arange(s, s + chunk.shape[0], dtype=np.int64), dist.shape)
        best_d, best_i = _merge(
            np.concatenate([best_d, dist], 1), np.concatenate([best_i, ids], 1), k
        )
    return best_d, best_i


def _exact_in_f32(a: npt.NDArray[Any]) -> bool:
    """Whether every value of `a` converts to float32 without rounding (by its dtype)."""
    return a.dtype in (np.float32, np.uint8, np.int8, np.uint16, np.int16, np.float16)


def _lower_bound(
    metric: str, v: npt.NDArray[np.float64], q: npt.NDArray[np.float64], d: int, exact_inputs: bool
) -> npt.NDArray[np.float64]:
    """Rigorous lower bound on the true distance of any row whose float32 value is >= v.

    L2 (squared, on translated data): the float32 expansion errs by at most
    c (||q||^2 + ||b||^2) with c = 8 (d + 4) u, which is loose for a far-away row b with a large
    norm - but such a row is far: ||q - b||^2 >= (||b|| - ||q||)^2. The bound is the minimum
    over ||b|| of the larger of the two, which has a closed form (the root of a quadratic).
    L1: the float32 sum errs by at most c v (c = 2 (d + 4) u) when the inputs are exact in
    float32; otherwise their rounding adds u (|q|_1 + |b|_1), again tamed by
    ||q - b||_1 >= | |b|_1 - |q|_1 |.
    """
    if metric == "l2":
        c = 8 * (d + 4) * _U32
        nq = (q * q).sum(1)
        r = np.sqrt(nq)
        disc = np.maximum((1 + c) * v - c * (2 + c) * nq, 0.0)
        s_root = (r + np.sqrt(disc)) / (1 + c)
        bound = (s_root - r) ** 2
        return np.where(v - 2 * c * nq > 0, bound, -np.inf)
    c = 2 * (d + 4) * _U32
    if exact_inputs:
        return v / (1 + c)
    u = 2 * _U32
    sq = np.abs(q).sum(1)
    at_root = (v + sq * (1 + c - u)) / (1 + c + u) - sq
    return np.minimum((v - 2 * u * sq) / (1 + c), at_root)


# ---------------------------------------------------------------------------------------------
# block searches: each returns exact (squared for L2) distances and indices, top k of a chunk


def _topk_exact_int(
    D: torch.Tensor, k: int, offset: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Top k of an integer distance block with ties to the lower index."""
    if k == 1:
        val, arg = D.min(1, keepdim=True)  # first minimum: the lower index on ties
        return val.numpy().astype(np.float64), arg.numpy().astype(np.int64) + offset
    # The k-th smallest value is exact whatever order topk gives equal values; every entry at
    # or below it is a candidate (k of them, plus any further ties at the threshold), and the
    # candidates are ordered by (value, index).
    threshold = D.topk(k, 1, largest=False, sorted=True).values[:, -1:]
    rows_t, cols_t = (threshold >= D).nonzero(as_tuple=True)
    rows, cols = rows_t.numpy(), cols_t.numpy()
    vals = D[rows_t, cols_t].numpy()
    order = np.lexsort((cols, vals, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    pos = np.searchsorted(rows, np.arange(D.shape[0]))[:, None] + np.arange(k)
    return vals[pos].astype(np.float64), cols[pos].astype(np.int64) + offset


def _l1_kernel_block(
    index: _Index, Qp: npt.NDArray[Any], rows: slice, threads: int
) -> npt.NDArray[Any]:
    """L1 distances of padded queries to training rows `rows` through the C kernel, threaded."""
    assert index.padded is not None and _l1 is not None
    X = index.padded[rows]
    nq, dp = Qp.shape
    integer = Qp.dtype == np.uint8
    out = np.empty((nq, X.shape[0]), dtype=np.int32 if integer else np.float32)
    fn = _l1.l1_u8 if integer else _l1.l1_f32
    bounds = np.linspace(0, nq, min(threads, nq) + 1).astype(int)

    def work(a: int, b: int) -> None:
        if b > a:
            fn(Qp[a:b], X, out[a:b], b - a, X.shape[0], dp)

    if len(bounds) <= 2:
        work(0, nq)
    else:
        with ThreadPoolExecutor(len(bounds) - 1) as pool:
            list(pool.map(work, bounds[:-1], bounds[1:]))
    return out


class _Searcher:
    def __init__(self, index: _Index, k: int, budget: int, threads: int) -> None:
        self.index, self.k, self.budget, self.threads = index, k, budget, threads
        self.n_fallback = 0

    def chunk_sizes(self, n_query: int) -> tuple[int, int]:
        """(queries, training rows) per block so that the blocks fit the memory budget."""
        # per (query, train) pair: block value + key/temporaries, about 16 bytes at worst
        pair_bytes = 16
        train = min(self.index.n, max(1024, self.budget // (pair_bytes * 64)))
        queries = max(1, min(n_query, self.budget // (pair_bytes * train)))
        return queries, train

    def search(
        self, Q: npt.NDArray[Any], query_step: int, train_step: int, desc: str
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        idx = self.index
        Qk = np.ascontiguousarray(Q[:, idx.keep])
        out_d = np.empty((Q.shape[0], self.k))
        out_i = np.empty((Q.shape[0], self.k), dtype=np.int64)
        starts = range(0, Q.shape[0], query_step)
        for s in progress(starts, total=len(starts), desc=desc):
            q = Qk[s : s + query_step]
            best_d = np.full((q.shape[0], 0), np.inf)
            best_i = np.zeros((q.shape[0], 0), dtype=np.int64)
            prepared = self.prepare(q)
            for t in range(0, idx.n, train_step):
                rows = slice(t, min(idx.n, t + train_step))
                d, i = self.block(q, prepared, rows)
                best_d, best_i = _merge(
                    np.concatenate([best_d, d], 1), np.concatenate([best_i, i], 1), self.k
                )
            out_d[s : s + q.shape[0]], out_i[s : s + q.shape[0]] = best_d, best_i
        return out_d, out_i

    def prepare(self, q: npt.NDArray[Any]) -> Any:
        idx = self.index
        if idx.integer and idx.metric == "l2":
            # ||a-b||^2 = ||a||^2 + ||b||^2 - 2ab; the int8 shift moved 2ab by 256*(sum a-128)
            # + 256*(sum b-128) + 2*d*128^2; col_i32 carries the b part, this the rest.
            a = q.astype(np.int64)
            row_const = (a * a).sum(1) - 256 * (a - 128).sum(1) - 2 * idx.d * 128 * 128
            return torch.from_numpy(_shift_to_int8(q)), row_const
        if idx.shift is not None:
            q = _shifted_f32(q, idx.shift)
        if idx.padded is not None:
            qp = np.zeros((q.shape[0], idx.padded.shape[1]), dtype=idx.padded.dtype)
            qp[:, : idx.d] = q
            return qp
        return torch.from_numpy(q).to(idx.device)

    def block(
        self, q: npt.NDArray[Any], prepared: Any, rows: slice
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        idx, k = self.index, min(self.k, rows.stop - rows.start)
        if idx.integer and idx.metric == "l2":
            assert idx.xt_i8 is not None and idx.col_i32 is not None
            q_i8, row_const = prepared
            G = torch._int_mm(q_i8, idx.xt_i8[:, rows])
            # ||b||^2 - 2ab up to a per-query constant, in one pass over the block
            torch.sub(idx.col_i32[rows], G, alpha=2, out=G)
            val, arg = _topk_exact_int(G, k, rows.start)
            return val + row_const[:, None], arg
        if idx.integer:  # L1, uint8, C kernel: exact int32 sums
            D = _l1_kernel_block(idx, prepared, rows, self.threads)
            return _topk_exact_int(torch.from_numpy(D), k, rows.start)
        return self.float_block(q, prepared, rows, k)

    def float_block(
        self, q: npt.NDArray[Any], prepared: Any, rows: slice, k: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        idx = self.index
        width = rows.stop - rows.start
        m = min(width, k + RERANK_MARGIN)
        if idx.padded is not None:  # float L1 through the C kernel
            D = torch.from_numpy(_l1_kernel_block(idx, prepared, rows, self.threads))
        else:
            assert idx.xf is not None
            xb = idx.xf[rows]
            if idx.metric == "l2":
                assert idx.norms is not None
                D = (prepared * prepared).sum(1, keepdim=True) - 2 * prepared @ xb.T
                D += idx.norms[rows]
            else:
                D = torch.cdist(prepared, xb, p=1.0)
        vals, cand = D.topk(m, 1, largest=False, sorted=True)
        vals64 = vals.double().cpu().numpy()
        cand = cand.cpu().numpy().astype(np.int64) + rows.start
        exact = _exact_dist(q, idx.X[cand], idx.metric)
        best_d, best_i = _merge(exact, cand, k)
        if m == width:  # every row of the block was re-ranked exactly
            return best_d, best_i
        # Anything left out has a float32 value >= vals[:, -1]; a lower bound on its true
        # distance must stay above the exact k-th distance (see _lower_bound).
        assert idx.shift is not None
        q64 = q.astype(np.float64) - idx.shift
        exact_inputs = idx.exact_f32 and _exact_in_f32(q)
        lower = _lower_bound(idx.metric, vals64[:, -1], q64, idx.d, exact_inputs)
        unsafe = np.flatnonzero(lower <= best_d[:, -1])
        if unsafe.size:
            self.n_fallback += int(unsafe.size)
            fd, fi = _brute_rows(q[unsafe], idx.X[rows], k, idx.metric, self.budget)
            best_d[unsafe], best_i[unsafe] = fd, fi + rows.start
        return best_d, best_i


def nearest_neighbors(
    X_train: npt.ArrayLike | torch.Tensor,
    X_query: npt.ArrayLike | torch.Tensor,
    k: int = 1,
    metric: Metric = "l2",
    *,
    device: str | torch.device = "cpu",
    memory_budget: int = _DEFAULT_BUDGET,
    batch_size: int | None = None,
    threads: int | None = None,
) -> Neighbors:
    """The exact k nearest training rows of every query row (see the module docstring)."""
    check_in("metric", metric, METRICS, error=KNNError)
    Xt = _as_2d(X_train, "X_train")
    return _Fitted(Xt, metric, torch.device(device)).query(
        X_query, k, memory_budget=memory_budget, batch_size=batch_size, threads=threads
    )


class _Fitted:
    def __init__(self, X: npt.NDArray[Any], metric: str, device: torch.device) -> None:
        self.n_features = X.shape[1]
        self.index = _build_index(X, metric, device)
        self._float_index: _Index | None = None  # built on first use by non-uint8 queries

    def query(
        self,
        Xq: Any,
        k: int,
        *,
        memory_budget: int,
        batch_size: int | None,
        threads: int | None,
        name: str = "X",
    ) -> Neighbors:
        Q = _as_2d(Xq, name)
        if Q.shape[1] != self.n_features:
            raise KNNError(
                f"{name}: expected {self.n_features} features (as in the training "
                "data), "
                f"found {Q.shape[1]}"
            )
        k = _check_k(k, self.index.n)
        idx = self.index
        if idx.integer and Q.dtype != np.uint8:
            # training data is uint8 but these queries are not: search them in float (built
            # once, then kept)
            if self._float_index is None:
                fl = _build_index(idx.X.astype(np.float32), idx.metric, idx.device)
                fl.keep, fl.const_cols, fl.const = idx.keep, idx.const_cols, idx.const
                self._float_index = fl
            idx = self._float_index
        if memory_budget < 2**20:
            raise KNNError(f"memory_budget: expected at least 1 MiB, found {memory_budget} bytes")
        searcher = _Searcher(idx, k, memory_budget, threads or torch.get_num_threads())
        q_step, t_step = searcher.chunk_sizes(Q.shape[0])
        if batch_size is not None:
            if batch_size < 1:
                raise KNNError(f"batch_size: expected a positive integer, found {batch_size}")
            q_step = batch_size
        dist, ind = searcher.search(Q, q_step, t_step, desc=f"{idx.metric} {k}-NN")
        const_cols = self.index.const_cols
        if const_cols.size:
            diff = Q[:, const_cols].astype(np.float64) - self.index.const
            extra = np.abs(diff).sum(1) if idx.metric == "l1" else (diff * diff).sum(1)
            dist = dist + extra[:, None]
        if idx.metric == "l2":
            dist = np.sqrt(np.maximum(dist, 0.0))
        return Neighbors(dist, ind, searcher.n_fallback)


# ---------------------------------------------------------------------------------------------
# voting


def vote(
    labels: npt.NDArray[np.int64], num_classes: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Majority vote over neighbour labels (nearest first) with the module's tie rule.

    Returns (winning class index per row, vote fractions (n, num_classes)).
    """
    counts = np.zeros((labels.shape[0], num_classes), dtype=np.int64)
    rows = np.repeat(np.arange(labels.shape[0]), labels.shape[1])
    np.add.at(counts, (rows, labels.ravel()), 1)
    tied = counts == counts.max(1, keepdims=True)
    in_tie = np.take_along_axis(tied, labels, 1)
    first = in_tie.argmax(1)
    winner = labels[np.arange(labels.shape[0]), first]
    return winner, counts / labels.shape[1]


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """Exact k-NN classifier (uniform votes) with the scikit-learn estimator API.

    Parameters
    ----------
    k: neighbours that vote.
    metric: "l1" (sum of absolute differences) or "l2" (Euclidean).
    batch_size: queries per block; None derives it from ``memory_budget``.
    device: "cpu" or a CUDA device; on CUDA the float32 search with float64 re-ranking is used.
    memory_budget: bytes the distance blocks may take (default 512 MiB).
    threads: CPU threads for the L1 kernel; None uses torch's thread count.
    """

    def __init__(
        self,
        k: int = 1,
        metric: Metric = "l2",
        batch_size: int | None = None,
        device: str = "cpu",
        memory_budget: int = _DEFAULT_BUDGET,
        threads: int | None = None,
    ) -> None:
        self.k = k
        self.metric = metric
        self.batch_size = batch_size
        self.device = device
        self.memory_budget = memory_budget
        self.threads = threads

    def fit(self, X: npt.ArrayLike | torch.Tensor, y: npt.ArrayLike | torch.Tensor) -> Self:
        check_in("metric", self.metric, METRICS, error=KNNError)
        Xa = _as_2d(X, "X")
        ya = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        if ya.ndim != 1 or ya.shape[0] != Xa.shape[0]:
            raise KNNError(
                f"y: expected {Xa.shape[0]} labels (one per row of X), found shape {ya.shape}"
            )
        _check_k(self.k, Xa.shape[0])
        self.classes_, self._y = np.unique(ya, return_inverse=True)
        self._fitted = _Fitted(Xa, self.metric, torch.device(self.device))
        self.n_features_in_ = Xa.shape[1]
        return self

    def _check_fitted(self) -> _Fitted:
        fitted = getattr(self, "_fitted", None)
        if fitted is None:
            raise KNNError("KNNClassifier: call fit(X, y) before predicting")
        return fitted

    def neighbors(
        self, X: npt.ArrayLike | torch.Tensor, n_neighbors: int | None = None
    ) -> Neighbors:
        """The search's whole result for `X`: distances, indices (nearest first) and how many
        queries needed the float64 fallback (`Neighbors.n_fallback`)."""
        return self._check_fitted().query(
            X,
            n_neighbors or self.k,
            memory_budget=self.memory_budget,
            batch_size=self.batch_size,
            threads=self.threads,
        )

    def kneighbors(
        self,
        X: npt.ArrayLike | torch.Tensor,
        n_neighbors: int | None = None,
        return_distance: bool = True,
    ) -> Any:
        """Distances and indices of the nearest training rows, nearest first (as scikit-learn);
        `neighbors` returns them with the search's fallback count."""
        nb = self.neighbors(X, n_neighbors)
        return (nb.distances, nb.indices) if return_distance else nb.indices

    def _vote(self, X: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        idx = self.kneighbors(X, return_distance=False)
        return vote(self._y[idx], len(self.classes_))

    def predict(self, X: npt.ArrayLike | torch.Tensor) -> npt.NDArray[Any]:
        winner = self._vote(X)[0]
        return self.classes_[winner]

    def predict_proba(self, X: npt.ArrayLike | torch.Tensor) -> npt.NDArray[np.float64]:
        return self._vote(X)[1]


# ---------------------------------------------------------------------------------------------
# choosing k


def accuracy_by_k(
    neighbor_labels: npt.NDArray[np.int64],
    y_true: npt.ArrayLike,
    ks: tuple[int, ...] | list[int],
    num_classes: int,
) -> npt.NDArray[np.float64]:
    """Accuracy of the k-NN vote for each k in `ks`, from the labels of the nearest neighbours
    (nearest first, at least max(ks) columns): one search serves every k."""
    y = np.asarray(y_true)
    if neighbor_labels.shape[1] < max(ks):
        raise KNNError(
            f"ks: expected at most {neighbor_labels.shape[1]} neighbours, found k = {max(ks)}"
        )
    return np.array([(vote(neighbor_labels[:, :k], num_classes)[0] == y).mean() for k in ks])


@dataclass(frozen=True)
class KSelection:
    """Cross-validated accuracy per k; `best_k` is the smallest k with the highest mean."""

    ks: tuple[int, ...]
    fold_accuracy: npt.NDArray[np.float64]  # (folds, len(ks))
    best_k: int

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        return self.fold_accuracy.mean(0)

    @property
    def std(self) -> npt.NDArray[np.float64]:
        return (
            self.fold_accuracy.std(0, ddof=1)
            if len(self.fold_accuracy) > 1
            else np.zeros(len(self.ks))
        )


def select_k(
    X: npt.ArrayLike,
    y: npt.ArrayLike,
    ks: tuple[int, ...] | list[int] = tuple(range(1, 16)),
    metric: Metric = "l2",
    *,
    folds: int = 5,
    seed: int = 0,
    **search: Any,
) -> KSelection:
    """Choose k by stratified `folds`-fold cross-validation on the training set.

    One search per fold with k = max(ks) gives the vote of every smaller k as well.
    """
    from sklearn.model_selection import StratifiedKFold

    Xa = _as_2d(X, "X")
    ya = np.asarray(y)
    classes, yi = np.unique(ya, return_inverse=True)
    ks = tuple(int(k) for k in ks)
    if folds < 2:
        raise KNNError(f"folds: expected at least 2, found {folds}")
    rows = []
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for train_idx, val_idx in splitter.split(np.zeros(len(yi)), yi):
        nb = nearest_neighbors(Xa[train_idx], Xa[val_idx], max(ks), metric, **search)
        rows.append(accuracy_by_k(yi[train_idx][nb.indices], yi[val_idx], ks, len(classes)))
    acc = np.array(rows)
    mean = acc.mean(0)
    best = ks[int(np.flatnonzero(mean == mean.max())[0])]
    return KSelection(ks, acc, best)


# ---------------------------------------------------------------------------------------------
# the lab notebook's bug, reproduced on purpose


def uint8_wraparound_distances(
    X_train: npt.NDArray[np.uint8], x: npt.NDArray[np.uint8], metric: Metric
) -> npt.NDArray[np.float64]:
    """Distances as seed 000's notebook computes them on uint8 arrays, bug included.

    ``np.sum(np.abs(Xtr - x), axis=1)`` subtracts in uint8, so every difference wraps modulo 256
    and ``abs`` does nothing; the L2 variant ``np.sqrt(np.sum(np.square(Xtr - x), axis=1))``
    wraps the square too. `x` may be one row (D,) or a few rows (q, D); the result is (n,) or
    (q, n).
    """
    check_in("metric", metric, METRICS, error=KNNError)
    if X_train.dtype != np.uint8 or x.dtype != np.uint8:
        raise KNNError(
            f"uint8_wraparound_distances: expected uint8 arrays, found "
            f"{X_train.dtype} and {x.dtype}"
        )
    single = x.ndim == 1
    qs = np.atleast_2d(x)
    if qs.shape[1] != X_train.shape[1]:
        raise KNNError(f"x: expected {X_train.shape[1]} features, found {qs.shape[1]}")
    n, d = X_train.shape
    out = np.empty((qs.shape[0], n), dtype=np.float64)
    if _l1 is not None:
        # numpy's uint8 arithmetic wraps exactly like the notebook's; the SAD kernel against a
        # zero row then sums each wrapped row of bytes
        dp = _pad_width(d, 64)
        buf = np.zeros((n, dp), dtype=np.uint8)
        zero = np.zeros((1, dp), dtype=np.uint8)
        sums = np.empty((1, n), dtype=np.int32)
        for i, q in enumerate(qs):
            np.subtract(X_train, q, out=buf[:, :d])
            if metric == "l2":
                np.multiply(buf, buf, out=buf)
            _l1.l1_u8(zero, buf, sums, 1, n, dp)
            out[i] = sums[0]
    else:
        X = torch.from_numpy(np.ascontiguousarray(X_train))
        for i, q in enumerate(qs):
            diff = X - torch.from_numpy(q)  # torch's uint8 wraps the same way
            if metric == "l2":
                diff = diff * diff
            out[i] = diff.sum(1, dtype=torch.int64).double().numpy()
    if metric == "l2":
        np.sqrt(out, out=out)
    return out[0] if single else out
