"""Robustness statistics: Wilson intervals, the attack summary, McNemar, image statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advlab.analysis.images import image_statistics
from advlab.analysis.robustness import (
    attack_summary,
    location_counts,
    mcnemar,
    pair_success_matrix,
    proportion_ci,
    query_statistics,
    success_by_bins,
    success_rate,
    success_within,
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


def test_success_within_counts_first_successes_up_to_each_budget() -> None:
    first = np.array([0, 2, -1, 2, 5, -1, 1])
    expected = [float(((first >= 0) & (first <= g)).mean()) for g in range(5)]
    assert success_within(first, 4) == expected == [1 / 7, 2 / 7, 4 / 7, 4 / 7, 4 / 7]
    assert success_within(np.zeros(0, dtype=int), 2) == [0.0, 0.0, 0.0]
    assert success_within(torch.tensor([3, -1]), 3) == [0.0, 0.0, 0.0, 0.5]


def test_pair_success_matrix_matches_the_per_pair_mean() -> None:
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    ok = rng.random(200) < 0.3
    m = pair_success_matrix(torch.as_tensor(src), tgt, ok, 4)
    for s in range(4):
        for t in range(4):
            sel = (src == s) & (tgt == t)
            assert (m[s, t] == ok[sel].mean()) if sel.any() else np.isnan(m[s, t])
    assert np.isnan(pair_success_matrix([0], [1], [True], 3)[1, 0])


def test_location_counts_is_a_histogram_of_x_y_rows() -> None:
    pixels = np.array([[[1, 0, 9, 9, 9], [1, 0, 0, 0, 0]], [[2, 3, 1, 1, 1], [0, 0, 5, 5, 5]]])
    counts = location_counts(pixels, (4, 3))  # 4 rows, 3 columns; x is the column
    assert counts.shape == (4, 3) and counts.sum() == 4
    assert counts[0, 1] == 2 and counts[3, 2] == 1 and counts[0, 0] == 1


def test_query_statistics_medians_over_recorded_successes_and_means_over_all() -> None:
    first = np.array([3, -1, 5, 1])
    to_success = np.array([40, 0, 60, 20])
    spent = torch.tensor([40, 100, 60, 20])
    ok = np.array([True, True, True, False])  # item 1: fooled but not recorded by the search
    stats = query_statistics(first, to_success, spent, ok)
    assert stats == {
        "median_generations_to_success": 4.0,
        "median_queries_to_success": 50.0,
        "mean_queries": 55.0,
        "total_queries": 220,
    }
    none = query_statistics(first, to_success, spent, np.zeros(4, dtype=bool))
    assert none["median_generations_to_success"] is None and none["total_queries"] == 220
