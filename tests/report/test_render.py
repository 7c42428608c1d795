"""Reports: markdown structure and a self-contained HTML page."""

from __future__ import annotations

import base64
from pathlib import Path

from advlab.report import Report, md_table, render_html
from advlab.report.figures import line_plot


def test_md_table() -> None:
    table = md_table([{"eps": 0.1, "acc": 0.91234567}, {"eps": 0.3, "acc": 0.1}])
    assert table.splitlines() == ["| eps | acc |", "|---|---|", "| 0.1 | 0.9123 |", "| 0.3 | 0.1 |"]


def test_report_sections_and_embedded_html(tmp_path: Path) -> None:
    rep = Report("T", tmp_path)
    rep.text("Analysis", "answers")
    rep.text("Methodology", "how")
    fig = line_plot(
        tmp_path / "figures" / "f.png", [0, 1], {"a": [1, 0]}, title="t", xlabel="x", ylabel="y"
    )
    rep.figure("Results", fig, "a figure")
    md = rep.markdown()
    assert md.index("## Methodology") < md.index("## Results") < md.index("## Analysis")
    assert "](figures/f.png)" in md
    page = render_html(md, tmp_path, title="T")
    encoded = base64.b64encode(fig.read_bytes()).decode()
    assert f"data:image/png;base64,{encoded}" in page
    assert "figures/f.png" not in page  # nothing left to fetch: the page opens offline
    assert "<h2>Results</h2>" in page


def test_html_embeds_only_the_run_folder(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"\x89PNG secret")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    page = render_html("![x](../secret.png)", run_dir)
    assert 'src="../secret.png"' in page and "base64" not in page


def test_rescale01_minmax_and_percentile_clip() -> None:
    import numpy as np

    from advlab.report.figures import rescale01

    img = np.zeros((1, 20, 20))
    img[0, 0, 0] = 1000.0  # one extreme pixel
    img[0, 10:, :] = 1.0
    plain = rescale01(img)
    assert plain.min() == 0.0 and plain.max() == 1.0
    assert plain[0, 19, 19] == 1.0 / 1000.0  # the extreme pixel squashes the rest
    clipped = rescale01(img, clip_percent=1.0)
    assert clipped[0, 19, 19] == 1.0 and clipped[0, 0, 1] == 0.0 and clipped[0, 0, 0] == 1.0


def test_rate_cell_writes_a_rate_and_its_interval_the_same_way_everywhere() -> None:
    from advlab.report import rate_cell

    summary = {
        "success_rate": 0.43,
        "success_rate_ci": (0.3621, 0.5012),
        "robust_accuracy": 0.5,
        "robust_accuracy_ci": (0.4, 0.6),
    }
    assert rate_cell(summary) == "43.0% (36.2-50.1)"
    assert rate_cell(summary, "robust_accuracy", digits=0) == "50% (40-60)"
    assert rate_cell({"rate": 0.25, "ci": (0.1, 0.5)}, "rate") == "25.0% (10.0-50.0)"
    assert rate_cell({"rate": float("nan"), "ci": (0.0, 1.0)}, "rate") == "—"
