"""Mean ± std and t intervals over seeds, checked against numpy and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from advlab.analysis import confidence_interval, format_mean_std, mean_std, summarize
from advlab.errors import ConfigError

VALUES = [0.912, 0.905, 0.918, 0.909, 0.915]


def test_mean_std_is_numpy_with_ddof_1() -> None:
    mean, std = mean_std(VALUES)
    assert mean == pytest.approx(np.mean(VALUES), abs=1e-15)
    assert std == pytest.approx(np.std(VALUES, ddof=1), abs=1e-15)
    assert mean_std(iter([1.0, 3.0])) == (2.0, pytest.approx(math.sqrt(2)))


def test_one_value_has_zero_std_and_no_value_is_nan() -> None:
    assert mean_std([0.7]) == (0.7, 0.0)
    mean, std = mean_std([])
    assert math.isnan(mean) and math.isnan(std)


def test_confidence_interval_matches_scipy() -> None:
    low, high = confidence_interval(VALUES, level=0.95)
    ref = stats.t.interval(0.95, df=len(VALUES) - 1, loc=np.mean(VALUES), scale=stats.sem(VALUES))
    assert (low, high) == pytest.approx(ref, abs=1e-12)
    low90, high90 = confidence_interval(VALUES, level=0.9)
    assert low < low90 < high90 < high
    assert all(math.isnan(v) for v in confidence_interval([0.5]))
    with pytest.raises(ConfigError, match="level: expected a coverage strictly between 0 and 1"):
        confidence_interval(VALUES, level=95)


def test_format_mean_std() -> None:
    assert format_mean_std([0.91, 0.914]) == "0.912 ± 0.003"
    assert format_mean_std([1, 2, 3], digits=1) == "2.0 ± 1.0"
    assert format_mean_std([0.5]) == "0.500 ± 0.000"
    assert format_mean_std([]) == "n/a"


def test_summarize() -> None:
    s = summarize(VALUES)
    assert s.n == 5 and s.level == 0.95
    assert (s.mean, s.std) == mean_std(VALUES)
    assert (s.ci_low, s.ci_high) == confidence_interval(VALUES)
    assert s.ci_low < s.mean < s.ci_high
