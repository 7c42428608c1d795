"""Figure helpers: the Pareto front and the labelled scatter."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_pareto_front_and_scatter(tmp_path: Path) -> None:
    from advlab.report.figures import pareto_front, scatter_plot

    points = {"a": (0.2, 0.8), "b": (0.3, 0.9), "c": (0.3, 0.9), "d": (0.5, 0.7), "e": (0.4, 0.9)}
    assert pareto_front(points) == ["a", "b", "c"]  # d and e are beaten; b and c tie
    path = scatter_plot(tmp_path / "s.png", points, title="t", xlabel="x", ylabel="y")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rate_bars_draws_rates_with_their_intervals(tmp_path: Path) -> None:
    from advlab.report.figures import rate_bars

    rows = [{"rate": 0.2, "ci": (0.1, 0.35)}, {"rate": 0.8, "ci": (0.6, 0.9)}]
    path = rate_bars(
        tmp_path / "r.png",
        ["a", "b"],
        {"model": rows},
        key="rate",
        title="t",
        xlabel="x",
        ylabel="y",
    )
    assert path.is_file() and path.stat().st_size > 3000
    with pytest.raises(KeyError):
        rate_bars(
            tmp_path / "s.png",
            ["a"],
            {"m": [{"rate": 0.1}]},
            key="rate",
            title="t",
            xlabel="x",
            ylabel="y",
        )
    assert not (tmp_path / "s.png").exists()
