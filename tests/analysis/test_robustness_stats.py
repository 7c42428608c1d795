"""Robustness statistics: Wilson intervals, the attack summary, McNemar, image statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlab.analysis.images import image_statistics
from advlab.analysis.robustness import (
    attack_summary,
    mcnemar,
    proportion_ci,
    success_by_bins,
    success_rate,
)
from advlab.errors import ConfigError


def test_wilson_interval_known_values() -> None:
    lo, hi = proportion_ci(8, 10)  # Wilson 95%: 0.4902 - 0.9433
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert all(np.isnan(proportion_ci(0, 0)))


def test_attack_summary_counts_clean_mistakes_as_not_robust() -> None:
    correct = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    fooled = np.array([1, 0, 0, 1, 1, 0], dtype=bool)
    s = attack_summary(correct, fooled)
    assert s["robust_accuracy"] == pytest.approx(2 / 6)
    assert s["success_rate"] == pytest.approx(2 / 4) and s["n_correct"] == 4


def test_mcnemar_exact_and_one_sided() -> None:
    a = np.array([True] * 50 + [False] * 50)
    b = a.copy()
    b[:10] = False  # the first breaks 10 images the second does not
    r = mcnemar(a, b)
    assert (r["only_first"], r["only_second"]) == (10, 0)
    assert r["p_two_sided"] == pytest.approx(2 * 0.5**10)
    assert r["p_first_lower"] == 1.0
    assert mcnemar(b, a)["p_first_lower"] == pytest.approx(0.5**10)
    assert mcnemar(a, a)["p_two_sided"] == 1.0
    with pytest.raises(ConfigError, match=r"^first, second: expected two bool arrays"):
        mcnemar(a, b[:5])


def test_image_statistics_on_known_images() -> None:
    x = torch.zeros(3, 3, 8, 8)
    x[1, :, :, 4:] = 1.0  # a vertical black/white edge
    x[2, 0] = 1.0  # flat red
    s = image_statistics(x)
    assert s["contrast"].tolist() == pytest.approx([0.0, 0.5040, 0.0], abs=1e-3)
    assert s["edge_density"].tolist() == [0.0, 0.25, 0.0]  # the two columns at the edge
    assert s["colour_variance"].tolist() == pytest.approx([0.0, 0.0, 2 / 9])


def test_success_rate_and_bins() -> None:
    ok = np.array([True, False, True, True, False, False, True, True])
    rate = success_rate(ok)
    assert (rate["n"], rate["successes"], rate["rate"]) == (8, 5, 0.625)
    assert rate["ci"] == proportion_ci(5, 8)
    assert success_rate(np.zeros(0, dtype=bool))["n"] == 0
    values = np.arange(8.0)  # quartile bins of two items each
    rows = success_by_bins(values, ok, bins=4)
    assert [r["successes"] for r in rows] == [1, 2, 0, 2]
    assert [r["n"] for r in rows] == [2, 2, 2, 2]
    assert rows[0]["low"] == 0.0 and rows[-1]["high"] == 7.0
    assert success_by_bins(np.zeros(0), np.zeros(0, dtype=bool)) == []
