"""Summary statistics over repeated runs (seeds): mean ± sample std and t-based intervals.

Results that depend on a seed are reported as mean ± std over seeds (STYLE.md). The std is the
sample standard deviation (ddof=1), the usual estimate from a handful of seeds; one value has
std 0. Empty input gives NaN (and "n/a" when formatted), as every seed of a setting may have
failed; a sweep table shows that rather than stopping.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from advlab.errors import ConfigError


def _values(values: Iterable[float]) -> np.ndarray:
    return np.asarray(list(values), dtype=np.float64).ravel()  # (n,)


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of `values`.

    Args:
        values: Numbers, e.g. one metric over seeds.

    Returns:
        ``(mean, std)``; std is 0 for a single value, and both are NaN for no values.
    """
    x = _values(values)
    if x.size == 0:
        return math.nan, math.nan
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    return float(x.mean()), std


def confidence_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t confidence interval for the mean of `values`.

    ``mean ± t_{(1+level)/2, n-1} · std / sqrt(n)``, which assumes roughly normal values; with
    3 to 5 seeds it is wide, as it should be.

    Args:
        values: Numbers, e.g. one metric over seeds.
        level: Coverage, strictly between 0 and 1.

    Returns:
        ``(low, high)``; NaN for fewer than two values, where no interval can be estimated.
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level: expected a coverage strictly between 0 and 1, got {level!r}")
    x = _values(values)
    if x.size < 2:
        return math.nan, math.nan
    from scipy import stats

    mean, std = mean_std(x)
    half = float(stats.t.ppf((1.0 + level) / 2.0, df=x.size - 1)) * std / math.sqrt(x.size)
    return mean - half, mean + half


def format_mean_std(values: Iterable[float], digits: int = 3) -> str:
    """``"0.912 ± 0.004"``: mean and sample std with `digits` decimals; ``"n/a"`` when empty."""
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass(frozen=True)
class Summary:
    """One metric over repeated runs.

    Args:
        n: Number of values.
        mean: Their mean (NaN when n is 0).
        std: Sample standard deviation (0 for one value, NaN for none).
        ci_low: Lower end of the t-based confidence interval (NaN for fewer than two values).
        ci_high: Upper end of the interval.
        level: Coverage of the interval.
    """

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    level: float = 0.95


def summarize(values: Iterable[float], level: float = 0.95) -> Summary:
    """`Summary` (count, mean, sample std, t interval) of `values`."""
    x = _values(values)
    mean, std = mean_std(x)
    low, high = confidence_interval(x, level)
    return Summary(n=int(x.size), mean=mean, std=std, ci_low=low, ci_high=high, level=level)
