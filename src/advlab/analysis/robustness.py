"""How an attack did on a fixed set of images: robust accuracy and success rate, with intervals.

Models of different clean accuracy are compared fairly by reporting both numbers: robust
accuracy (correct and not fooled, over all N images) and the success rate among the images
the model classified correctly to begin with.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from advlab.errors import ConfigError


def proportion_ci(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (scipy's `binomtest`); NaN for 0 trials."""
    if trials == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    ci = binomtest(int(successes), int(trials)).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


def attack_summary(correct: Any, fooled: Any, level: float = 0.95) -> dict[str, Any]:
    """Robust accuracy and attack success rate of one attack setting.

    Args:
        correct: Bool (N,): the model classifies the clean image correctly.
        fooled: Bool (N,): the attacked image meets the attack's criterion (misclassified, or
            classified as the target).
        level: Coverage of the Wilson intervals.

    Returns:
        A dict with `n`, `n_correct`, `clean_accuracy`, `robust_accuracy` (correct and not
        fooled, over all N) with `robust_accuracy_ci`, and `success_rate` (fooled among the
        correct ones) with `success_rate_ci`.
    """
    c = np.asarray(_numpy(correct), dtype=bool)
    f = np.asarray(_numpy(fooled), dtype=bool)
    if c.shape != f.shape or c.ndim != 1:
        raise ConfigError(
            f"correct, fooled: expected two bool arrays of one shape (N,), found "
            f"{c.shape} and {f.shape}"
        )
    n, n_correct = len(c), int(c.sum())
    robust = int((c & ~f).sum())
    succeeded = int((c & f).sum())
    return {
        "n": n,
        "n_correct": n_correct,
        "clean_accuracy": n_correct / n if n else float("nan"),
        "robust_accuracy": robust / n if n else float("nan"),
        "robust_accuracy_ci": proportion_ci(robust, n, level),
        "success_rate": succeeded / n_correct if n_correct else float("nan"),
        "success_rate_ci": proportion_ci(succeeded, n_correct, level),
    }


def success_rate(ok: Any, level: float = 0.95) -> dict[str, Any]:
    """``{"n", "successes", "rate", "ci"}`` of a bool (N,) array of outcomes (Wilson interval;
    NaN rate for N = 0)."""
    ok = np.asarray(_numpy(ok), dtype=bool)
    n, k = len(ok), int(ok.sum())
    return {
        "n": n,
        "successes": k,
        "rate": k / n if n else float("nan"),
        "ci": proportion_ci(k, n, level),
    }


def success_by_bins(values: Any, ok: Any, bins: int = 4) -> list[dict[str, Any]]:
    """`success_rate` per quantile bin of `values` (N,): the bins hold about equally many
    items; each row has the bin's ``low`` and ``high`` edges. Empty for N = 0."""
    values, ok = np.asarray(_numpy(values)), np.asarray(_numpy(ok), dtype=bool)
    if len(values) == 0:
        return []
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return [
        {"low": float(edges[b]), "high": float(edges[b + 1]), **success_rate(ok[which == b])}
        for b in range(len(edges) - 1)
    ]


def success_within(first_success: Any, budget: int) -> list[float]:
    """Share of the attacked items fooled within b steps, for b = 0 .. `budget`:
    `first_success` (N,) is the step of each item's first success, -1 where it had none.
    All zeros for N = 0."""
    first = np.asarray(_numpy(first_success)).astype(np.int64).ravel()
    if len(first) == 0:
        return [0.0] * (budget + 1)
    hits = np.bincount(first[(first >= 0) & (first <= budget)], minlength=budget + 1)
    return (np.cumsum(hits) / len(first)).tolist()


def query_statistics(
    first_success: Any, queries_to_success: Any, queries: Any, ok: Any
) -> dict[str, Any]:
    """Cost of a query-based search over N items: the median steps (``first_success``, -1 where
    none) and model queries to success over the items both `ok` and recorded as found by the
    search (None if there are none), the mean and total queries spent on all items."""
    first = np.asarray(_numpy(first_success))
    won = np.asarray(_numpy(ok), dtype=bool) & (first >= 0)
    spent = torch.as_tensor(queries)  # the mean in float32, reduced as torch reduces it
    return {
        "median_generations_to_success": float(np.median(first[won])) if won.any() else None,
        "median_queries_to_success": (
            float(np.median(np.asarray(_numpy(queries_to_success))[won])) if won.any() else None
        ),
        "mean_queries": float(spent.float().mean()) if len(spent) else 0.0,
        "total_queries": int(spent.sum()),
    }


def pair_success_matrix(sources: Any, targets: Any, ok: Any, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) success rate of targeted attacks from class ``s`` (row) to
    class ``t`` (column), NaN where no attack had that pair."""
    s = np.asarray(_numpy(sources)).astype(np.int64).ravel()
    t = np.asarray(_numpy(targets)).astype(np.int64).ravel()
    won = np.asarray(_numpy(ok), dtype=np.float64).ravel()
    cells = s * num_classes + t
    size = num_classes * num_classes
    tried = np.bincount(cells, minlength=size)
    hits = np.bincount(cells, weights=won, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(tried > 0, hits / np.maximum(tried, 1), np.nan)
    return rate.reshape(num_classes, num_classes)


def location_counts(pixels: Any, shape: tuple[int, int]) -> np.ndarray:
    """How often each pixel (row, column) of an image of `shape` was chosen: `pixels`
    (..., >= 2) holds (x, y, ...) rows, x the column."""
    xy = np.asarray(_numpy(pixels))[..., :2].reshape(-1, 2).astype(np.int64)
    counts = np.zeros(shape[0] * shape[1], dtype=np.int64)
    np.add.at(counts, xy[:, 1] * shape[1] + xy[:, 0], 1)
    return counts.reshape(shape)


def _numpy(value: Any) -> Any:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return value


def mcnemar(first: Any, second: Any) -> dict[str, Any]:
    """Exact McNemar test of two attacks' success on the same images (paired outcomes).

    Args:
        first, second: Bool (N,): which images each attack broke.

    Returns:
        A dict with `only_first` and `only_second` (the discordant counts), `p_two_sided`, and
        `p_first_lower`, the one-sided p-value of "the first succeeds less often than the
        second" (an exact binomial test on the discordant pairs, scipy's `binomtest`).
    """
    from scipy.stats import binomtest

    a = np.asarray(_numpy(first), dtype=bool)
    b = np.asarray(_numpy(second), dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ConfigError(
            f"first, second: expected two bool arrays of one shape (N,), found "
            f"{a.shape} and {b.shape}"
        )
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return {"only_first": 0, "only_second": 0, "p_two_sided": 1.0, "p_first_lower": 1.0}
    return {
        "only_first": only_a,
        "only_second": only_b,
        "p_two_sided": float(binomtest(only_b, n, 0.5).pvalue),
        "p_first_lower": float(binomtest(only_b, n, 0.5, alternative="greater").pvalue),
    }
