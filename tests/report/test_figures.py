"""Figure helpers: the Pareto front and the labelled scatter."""

from __future__ import annotations

from pathlib import Path


def test_pareto_front_and_scatter(tmp_path: Path) -> None:
    from advlab.report.figures import pareto_front, scatter_plot

    points = {"a": (0.2, 0.8), "b": (0.3, 0.9), "c": (0.3, 0.9), "d": (0.5, 0.7), "e": (0.4, 0.9)}
    assert pareto_front(points) == ["a", "b", "c"]  # d and e are beaten; b and c tie
    path = scatter_plot(tmp_path / "s.png", points, title="t", xlabel="x", ylabel="y")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
