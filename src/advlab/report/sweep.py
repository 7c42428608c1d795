"""The report of a sweep: summary.json (mean, sample std, t interval and per-seed values of every
metric per setting), one figure per swept key and metric, report.md and report.html, all built
from the sweep folder alone (sweep.json and the points' metrics.json)."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from advlab.analysis.stats import format_mean_std, summarize
from advlab.errors import RunError
from advlab.fileio import digest, slug, write_atomic
from advlab.overrides import format_grid_item, format_value
from advlab.report.figures import line_plot
from advlab.report.render import Report, render_html
from advlab.runs import write_json

log = logging.getLogger(__name__)

MAX_LINES = 6  # beyond this many combinations of the other keys, a figure pools them


def metric_value(metrics: Any, path: str) -> float | None:
    """The number at dotted `path` in a metrics mapping, or None if absent or not a number.

    ``"clean_accuracy"`` is a top-level key; ``"fgsm.-1.accuracy"`` is key ``fgsm``, its last
    list item, then key ``accuracy``. A top-level key containing dots is found as it is.
    """
    node = metrics
    parts = [path] if isinstance(metrics, Mapping) and path in metrics else path.split(".")
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and re.fullmatch(r"-?\d+", part):
            index = int(part)
            if not -len(node) <= index < len(node):
                return None
            node = node[index]
        else:
            return None
    return float(node) if _is_number(node) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def write_sweep_report(folder: Path, *, metric: str | Sequence[str] | None = None) -> Path:
    """Write summary.json, figures and report.md/html of a sweep, from its folder alone.

    Metrics: every top-level number in the points' metrics.json, plus the dotted paths in
    `metric`. Table cells are mean ± sample std (ddof=1) over the seeds that completed.
    Figures, one per swept key and plotted metric, show the metric against the key's values
    with ±1 std error bars; one line per combination of the other swept keys (up to
    `MAX_LINES`, else the points of each value are pooled). Plotted metrics: `metric` when
    given, else every top-level number that varies across points.

    Returns:
        The path of report.html.
    """
    folder = Path(folder)
    sweep_file = folder / "sweep.json"
    if not sweep_file.is_file():
        raise RunError(f"{sweep_file}: missing; is {folder} a sweep folder?")
    sweep = json.loads(sweep_file.read_text())
    keys: list[str] = sweep["keys"]
    grid: dict[str, list[Any]] = sweep["grid"]
    points: list[dict[str, Any]] = sweep["points"]
    loaded: dict[str, Any] = {}
    for p in points:
        if p["status"] == "complete" and p["metrics"]:
            path = folder / p["metrics"]
            if path.is_file():
                loaded[p["name"]] = json.loads(path.read_text())
            else:
                log.warning("%s: missing although the point is complete", path)
    requested = [metric] if isinstance(metric, str) else list(metric or [])
    scalars = sorted({k for m in loaded.values() for k, v in m.items() if _is_number(v)})
    columns = scalars + [m for m in requested if m not in scalars]
    varying = [m for m in scalars if len({metric_value(v, m) for v in loaded.values()}) > 1]
    plotted = requested or varying or scalars[:1]
    missing = [m for m in requested if all(metric_value(v, m) is None for v in loaded.values())]

    def per_seed(group: Sequence[dict[str, Any]], name: str) -> list[tuple[int, float]]:
        found = ((p["seed"], metric_value(loaded.get(p["name"]), name)) for p in group)
        return [(seed, v) for seed, v in found if v is not None]

    def values(group: Sequence[dict[str, Any]], name: str) -> list[float]:
        return [v for _, v in per_seed(group, name)]

    groups: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault(digest(p["settings"]), []).append(p)
    rows = []
    for group in groups.values():
        row: dict[str, Any] = {
            "settings": group[0]["settings"],
            "points": len(group),
            "complete": sum(p["name"] in loaded for p in group),
            "metrics": {},
        }
        for name in columns:
            pairs = per_seed(group, name)
            s = summarize(v for _, v in pairs)
            row["metrics"][name] = {
                "n": s.n,
                "mean": _finite(s.mean),
                "std": _finite(s.std),
                "ci95": [_finite(s.ci_low), _finite(s.ci_high)],
                "seeds": [seed for seed, _ in pairs],
                "values": [v for _, v in pairs],
            }
        rows.append(row)

    figures: list[tuple[Path, str]] = []
    if loaded:
        for key in keys:
            for name in plotted:
                if name not in missing:
                    figures.append(_figure(folder, sweep, key, name, values))
    failed = [
        {"point": p["name"], "settings": p["settings"], "seed": p["seed"], "error": p["error"]}
        for p in points
        if p["status"] != "complete"
    ]
    summary = {
        "experiment": sweep["experiment"],
        "id": sweep["id"],
        "keys": keys,
        "grid": grid,
        "seeds": sweep["seeds"],
        "metrics": columns,
        "plotted": plotted,
        "missing_metrics": missing,
        "rows": rows,
        "failed": failed,
        "figures": [os.path.relpath(f, folder) for f, _ in figures],
    }
    write_json(folder / "summary.json", summary)

    report = _report(folder, sweep, summary, figures)
    md = report.markdown()
    write_atomic(folder / "report.md", md)
    write_atomic(folder / "report.html", render_html(md, folder, title=report.title))
    return folder / "report.html"


def _finite(x: float) -> float | None:
    return None if math.isnan(x) else x


def _label(value: Any) -> str:
    return value if isinstance(value, str) else format_value(value)


def _figure(
    folder: Path,
    sweep: dict[str, Any],
    key: str,
    name: str,
    values: Callable[[Sequence[dict[str, Any]], str], list[float]],
) -> tuple[Path, str]:
    keys: list[str] = sweep["keys"]
    grid: dict[str, list[Any]] = sweep["grid"]
    xs = grid[key]
    numeric = all(_is_number(v) for v in xs)
    order = sorted(range(len(xs)), key=lambda i: xs[i]) if numeric else list(range(len(xs)))
    others = [k for k in keys if k != key]
    combos = list(itertools.product(*(grid[k] for k in others)))
    pooled = len(combos) > MAX_LINES
    lines: dict[str, dict[str, Any]] = (
        {"all settings pooled": {}}
        if pooled
        else {
            ", ".join(f"{k}={_label(v)}" for k, v in zip(others, c, strict=True)) or name: dict(
                zip(others, c, strict=True)
            )
            for c in combos
        }
    )
    series: dict[str, Sequence[float]] = {}
    errors: dict[str, Sequence[float]] = {}
    for label, fixed in lines.items():
        means, stds = [], []
        for i in order:
            want = {**fixed, key: xs[i]}
            group = [
                p for p in sweep["points"] if all(p["settings"][k] == v for k, v in want.items())
            ]
            s = summarize(values(group, name))
            means.append(s.mean)
            stds.append(s.std)
        series[label], errors[label] = means, stds
    if numeric:
        x: list[float] = [float(xs[i]) for i in order]
        xlabel = key
    else:
        x = [float(i) for i in range(len(xs))]
        xlabel = f"{key} (" + "; ".join(f"{i} = {_label(v)}" for i, v in enumerate(xs)) + ")"
    n_seeds = len(sweep["seeds"])
    spread = "all points of each value" if pooled else f"{n_seeds} seed(s)"
    path = line_plot(
        folder / "figures" / f"{slug(name)}-vs-{slug(key)}.png",
        x,
        series,
        errors=errors,
        title=f"{sweep['experiment']} sweep: {name} vs {key}\n(mean ± std over {spread})",
        xlabel=xlabel,
        ylabel=name,
    )
    how = (
        "points of the other settings pooled"
        if pooled
        else ("one line per setting of " + ", ".join(others) if others else "one line")
    )
    caption = f"{name} against {key}: mean ± std over {spread}; {how}."
    return path, caption


def _report(
    folder: Path,
    sweep: dict[str, Any],
    summary: dict[str, Any],
    figures: Sequence[tuple[Path, str]],
) -> Report:
    experiment, keys = sweep["experiment"], summary["keys"]
    points = sweep["points"]
    n_ok = sum(p["status"] == "complete" for p in points)
    n_seeds = len(sweep["seeds"])
    rep = Report(
        f"Sweep of {experiment}: {' x '.join(keys) or 'seeds only'}, {n_seeds} seed(s)", folder
    )
    command = " ".join(
        [f"advlab sweep {experiment}"]
        + [f"--grid '{format_grid_item(k, summary['grid'][k])}'" for k in keys]
        + [f"--seeds {n_seeds}"]
    )
    base = ", ".join(f"`{o}`" for o in sweep["base_overrides"]) or "none"
    rep.intro(
        f"{len(points)} points ({len(summary['rows'])} setting(s) x {n_seeds} seed(s)) on "
        f"{sweep['device']}: {n_ok} complete, {len(points) - n_ok} failed. Command: "
        f"`{command}`; settings shared by every point: {base}."
    )
    rep.text(
        "Methodology",
        f"""
Each point is an ordinary run of `{experiment}` with the shared settings, the point's grid
values and a seed in 0..{n_seeds - 1}; its whole run folder (config, metrics, report, log)
is under `points/<point>/`. A table cell is the mean ± sample standard deviation (ddof=1)
over the seeds that completed; `summary.json` also holds each seed's value and a t-based 95%
confidence interval. Metrics are the top-level numbers of the runs' `metrics.json`, plus any
dotted path asked for (`--metric`, e.g. `fgsm.-1.accuracy`: key, list index, key).
""",
    )
    table = []
    for row in summary["rows"]:
        cells: dict[str, Any] = {k: _label(row["settings"][k]) for k in keys}
        cells["runs complete"] = f"{row['complete']}/{row['points']}"
        for name in summary["metrics"]:
            cells[name] = format_mean_std(row["metrics"][name]["values"])
        table.append(cells)
    rep.table("Results", table, caption="Mean ± std over seeds, per setting")
    for path, caption in figures:
        rep.figure("Results", path, caption)
    if summary["failed"]:
        rows = [
            {"point": f["point"], "seed": f["seed"], "error": _cell(f["error"] or "")}
            for f in summary["failed"]
        ]
        rep.table("Results", rows, caption="Failed points (see each point's run.log)")
    rep.text("Analysis", _analysis(summary, keys))
    return rep


def _cell(text: str, width: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _analysis(summary: dict[str, Any], keys: Sequence[str]) -> str:
    lines = []
    for name in summary["plotted"]:
        if name in summary["missing_metrics"]:
            lines.append(
                f"- **`{name}`** is not a number in any complete point's metrics.json; check "
                "the path (dotted keys, integer list indices)."
            )
            continue
        ranked = [r for r in summary["rows"] if r["metrics"][name]["mean"] is not None]
        if len(ranked) < 2 or not keys:
            continue
        ranked.sort(key=lambda r: r["metrics"][name]["mean"])

        def where(row: dict[str, Any], name: str = name) -> str:
            setting = ", ".join(f"{k}={_label(row['settings'][k])}" for k in keys)
            return f"{setting} ({format_mean_std(row['metrics'][name]['values'])})"

        lines.append(
            f"- **`{name}`** is highest at {where(ranked[-1])} and lowest at {where(ranked[0])}."
        )
    if summary["failed"]:
        lines.append(
            f"- **{len(summary['failed'])} point(s) failed** (table above); the cells average "
            "the seeds that completed. Rerunning the sweep with `--resume` retries them and "
            "reuses every complete point."
        )
    return "\n".join(lines) or "Nothing to compare: a single setting, or no complete point."
