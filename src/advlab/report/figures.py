"""Figures for reports: matplotlib (Agg backend), written atomically as PNG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator, NullLocator

from advlab.fileio import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """Save and close `fig` as PNG at `path`, through a temporary file."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return Path(path)


def line_plot(
    path: Path,
    x: Sequence[float],
    series: dict[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
    logy: bool = False,
    logx: bool = False,
    errors: dict[str, Sequence[float]] | None = None,
    styles: dict[str, dict[str, object]] | None = None,
) -> Path:
    """One line per series over a shared x axis, with optional error bars; `styles` gives
    matplotlib keywords per series (e.g. a dashed line for a series drawn over another)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        err = (errors or {}).get(name)
        kw: dict[str, object] = {"marker": "o", **(styles or {}).get(name, {})}
        ax.errorbar(x, ys, yerr=err, capsize=3 if err is not None else 0, label=name, **kw)  # type: ignore[arg-type]
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if all(float(v).is_integer() for v in x):  # epochs, depths: no 1.5 ticks
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ylim is not None:
        ax.set_ylim(*ylim)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
        if len(x) <= 12:  # label the measured values themselves, not powers of ten
            ax.set_xticks(list(x), [f"{v:g}" for v in x])
            ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return save(fig, path)


def image_grid(
    path: Path,
    images: np.ndarray,
    *,
    title: str,
    row_labels: Sequence[str] | None = None,
    cell_titles: Sequence[Sequence[str]] | None = None,
    cmap: str = "gray",
    signed: bool = False,
) -> Path:
    """A grid of images; `images` is (rows, cols, H, W[, C]) in [0, 1] (or [-1, 1] if signed)."""
    rows, cols = images.shape[:2]
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows + 0.4), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r][c]
            img = images[r, c]
            if img.ndim == 3 and img.shape[-1] == 1:
                img = img[..., 0]
            if signed:
                ax.imshow(img, cmap="seismic", vmin=-1, vmax=1)
            else:
                ax.imshow(np.clip(img, 0, 1), cmap=cmap if img.ndim == 2 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if cell_titles is not None:
                ax.set_title(cell_titles[r][c], fontsize=8)
            if row_labels is not None and c == 0:
                ax.set_ylabel(row_labels[r], fontsize=9)
    fig.suptitle(title)
    return save(fig, path)


def matrix_grid(
    path: Path,
    matrices: dict[str, np.ndarray],
    *,
    title: str,
    cmap: str = "RdBu_r",
    symmetric: bool = True,
    ncols: int | None = None,
) -> Path:
    """Heatmaps in a grid (e.g. covariance matrices), each with its own colour bar."""
    cols = min(ncols or len(matrices), len(matrices))
    rows = -(-len(matrices) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.4 * cols, 4.4 * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat[len(matrices) :]:
        ax.axis("off")
    for ax, (name, mat) in zip(axes.flat, matrices.items(), strict=False):
        lim = float(np.abs(mat).max()) or 1.0
        kwargs = {"vmin": -lim, "vmax": lim} if symmetric else {}
        im = ax.imshow(mat, cmap=cmap, interpolation="nearest", **kwargs)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("feature (pixel index)")
        ax.set_ylabel("feature (pixel index)")
        fig.colorbar(im, ax=ax, shrink=0.85)
    fig.suptitle(title)
    return save(fig, path)


def rescale01(images: np.ndarray, clip_percent: float = 0.0) -> np.ndarray:
    """Scale each image (first axis) to [0, 1] for display: min-max, or with `clip_percent`
    between its `clip_percent` and 100 - `clip_percent` percentiles, clipped, so that a few
    extreme pixels (standardised border pixels) do not turn the rest grey."""
    flat = images.reshape(len(images), -1)
    if clip_percent > 0:
        low, high = np.percentile(flat, [clip_percent, 100 - clip_percent], axis=1, keepdims=True)
    else:
        low, high = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    scaled = (flat - low) / np.maximum(high - low, 1e-12)
    return np.clip(scaled, 0.0, 1.0).reshape(images.shape)


def learning_curves(
    path: Path, history: dict[str, Sequence[float]], *, title: str, val_label: str = "val"
) -> Path:
    """Loss and accuracy per epoch, training and validation, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    epochs = list(range(1, len(history["train_loss"]) + 1))
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = history.get(f"{split}_{metric}") or []
            if len(values):
                label = val_label if split == "val" else split
                ax.plot(epochs[: len(values)], values, style, markersize=3, label=label)
        best = history.get("best_epoch")
        if isinstance(best, int):
            ax.axvline(best + 1, color="grey", linestyle=":", label=f"min {val_label} loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss" if metric == "loss" else "accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return save(fig, path)


def confusion_matrix_plot(
    path: Path, matrix: np.ndarray, classes: Sequence[str], *, title: str
) -> Path:
    """A confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.5, 0.55 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), layout="constrained")
    ConfusionMatrixDisplay(matrix, display_labels=list(classes)).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format="d"
    )
    ax.set_title(title)
    return save(fig, path)


def panel_plot(
    path: Path,
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
) -> Path:
    """One subplot per panel, several (x, y) series overlaid in each, shared legend."""
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.9), squeeze=False, layout="constrained")
    for ax, (name, series) in zip(axes[0], panels.items(), strict=False):
        for label, (x, y) in series.items():
            ax.plot(x, y, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=8)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title)
    return save(fig, path)


def equations_figure(path: Path, lines: Sequence[str], *, title: str) -> Path:
    """Equations (matplotlib mathtext, one per line) rendered as an image: the HTML report stays
    self-contained, with no maths library to fetch."""
    fig = plt.figure(figsize=(10, 0.6 * len(lines) + 0.8))
    fig.text(0.02, 1 - 0.35 / (0.6 * len(lines) + 0.8), title, fontsize=12, weight="bold", va="top")
    for i, line in enumerate(lines):
        fig.text(0.03, 1 - (0.9 + 0.6 * i) / (0.6 * len(lines) + 0.8), line, fontsize=12, va="top")
    return save(fig, path)


def adversarial_example(
    path: Path,
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    classes: Sequence[str],
    *,
    title: str,
    magnify: float = 1.0,
) -> Path:
    """Original, perturbation, adversarial and both prediction vectors, one row per attack.

    Each row is `(label, original, adversarial, probs_original, probs_adversarial)`, images
    (H, W[, C]) in [0, 1]. The perturbation is shown on a diverging scale, multiplied by
    `magnify` and centred on grey, so that its sign is visible.
    """
    n = len(rows)
    fig, axes = plt.subplots(
        n,
        5,
        figsize=(15, 2.9 * n),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 1, 1, 1.6, 1.6]},
        layout="constrained",
    )
    ticks = np.arange(len(classes))
    for r, (label, orig, adv, p_orig, p_adv) in enumerate(rows):
        delta = adv - orig
        panels = [(orig, "original"), (0.5 + magnify * delta / 2, "perturbation"),
                  (adv, "adversarial")]  # fmt: skip
        for c, (img, name) in enumerate(panels):
            ax = axes[r][c]
            gray = img.ndim == 2 or img.shape[-1] == 1
            show = np.clip(img[..., 0] if img.ndim == 3 and gray else img, 0, 1)
            ax.imshow(
                show, cmap=("seismic" if c == 1 else "gray") if gray else None, vmin=0, vmax=1
            )
            ax.set_xticks([])
            ax.set_yticks([])
            extra = f" (x{magnify:.3g})" if c == 1 and magnify != 1 else ""
            ax.set_title(f"{name}{extra}", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
        for c, (probs, name) in ((3, (p_orig, "original")), (4, (p_adv, "adversarial"))):
            ax = axes[r][c]
            colours = ["tab:red" if i == int(np.argmax(probs)) else "tab:blue" for i in ticks]
            ax.bar(ticks, probs, color=colours)
            ax.set_xticks(
                ticks,
                [str(k) for k in classes],
                fontsize=7,
                rotation=45 if max(len(str(k)) for k in classes) > 2 else 0,
            )
            ax.set_ylim(0, 1)
            ax.set_ylabel("softmax probability", fontsize=8)
            ax.set_title(
                f"prediction on the {name}: {classes[int(np.argmax(probs))]} "
                f"({float(np.max(probs)):.2f})",
                fontsize=9,
            )
    fig.suptitle(title)
    return save(fig, path)


def heatmap(
    path: Path,
    matrix: np.ndarray,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    xticks: Sequence[str] | None = None,
    yticks: Sequence[str] | None = None,
    fmt: str = ".2f",
    vmin: float | None = 0.0,
    vmax: float | None = 1.0,
) -> Path:
    """A labelled matrix of values (rates, accuracies) with the value written in each cell;
    NaN cells stay blank."""
    rows, cols = matrix.shape
    fig, ax = plt.subplots(
        figsize=(max(4.5, 0.6 * cols + 2), max(3.8, 0.5 * rows + 1.8)), layout="constrained"
    )
    im = ax.imshow(matrix, cmap="viridis", vmin=vmin, vmax=vmax)
    for (r, c), value in np.ndenumerate(matrix):
        if np.isfinite(value):
            ax.text(
                c,
                r,
                format(value, fmt),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value < 0.5 * ((vmax or 1) + (vmin or 0)) else "black",
            )
    ax.set_xticks(range(cols), [str(t) for t in (xticks if xticks is not None else range(cols))])
    ax.set_yticks(range(rows), [str(t) for t in (yticks if yticks is not None else range(rows))])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, shrink=0.85)
    return save(fig, path)


def bar_plot(
    path: Path,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    errors: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """Grouped bars: one group per label, one bar per series; `errors` gives (low, high)
    interval ends per series (e.g. Wilson intervals), drawn as error bars."""
    n = max(1, len(series))
    width = 0.8 / n
    pos = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(labels) * n + 2), 4), layout="constrained")
    for i, (name, values) in enumerate(series.items()):
        v = np.asarray(values, dtype=float)
        yerr = None
        if errors is not None and name in errors:
            low, high = (np.asarray(e, dtype=float) for e in errors[name])
            yerr = np.nan_to_num(np.stack([v - low, high - v]).clip(min=0))
        ax.bar(pos + (i - (n - 1) / 2) * width, v, width, yerr=yerr, capsize=2, label=name)
    long_labels = max((len(str(s)) for s in labels), default=0) > 6
    ax.set_xticks(pos, [str(label) for label in labels], rotation=30 if long_labels else 0)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return save(fig, path)


def rate_bars(
    path: Path,
    labels: Sequence[str],
    series: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    key: str = "success_rate",
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """`bar_plot` of rates in [0, 1] with their 95% intervals as error bars: `series` maps a
    name to one summary per label, each holding `key` and ``KEY_ci`` (``rate`` and ``ci`` for
    ``key="rate"``), as `advlab.report.render.rate_cell` reads them."""
    ci = "ci" if key == "rate" else f"{key}_ci"
    values = {name: [s[key] for s in rows] for name, rows in series.items()}
    errors = {
        name: ([s[ci][0] for s in rows], [s[ci][1] for s in rows]) for name, rows in series.items()
    }
    return bar_plot(
        path, labels, values, title=title, xlabel=xlabel, ylabel=ylabel, errors=errors, ylim=(0, 1)
    )


def bar_panels(
    path: Path,
    panels: Mapping[str, tuple[Sequence[str], Sequence[float]]],
    *,
    title: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """One bar chart per panel, each with its own bar labels: `{title: (labels, values)}`."""
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False, layout="constrained")
    for ax, (name, (labels, values)) in zip(axes[0], panels.items(), strict=False):
        ax.bar(range(len(values)), np.asarray(values, dtype=float))
        ax.set_xticks(
            range(len(labels)),
            [str(label) for label in labels],
            rotation=35,
            fontsize=7,
            ha="right",
        )
        ax.set_title(name, fontsize=9)
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title)
    return save(fig, path)


def distribution_plot(
    path: Path,
    samples: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    bins: int = 20,
    logx: bool = False,
) -> Path:
    """Histogram (left) and empirical CDF (right) of one or more samples, with medians marked."""
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 3.9), layout="constrained")
    values = [np.asarray(v, dtype=float) for v in samples.values()]
    nonempty = [v for v in values if v.size]
    everything = np.concatenate(nonempty) if nonempty else np.zeros(1)
    low, high = float(everything.min()), float(everything.max())
    if logx:
        low = max(low, 1e-12)
        edges = np.geomspace(low, max(high, low * 1.01), bins + 1)
    else:
        edges = np.linspace(low, max(high, low + 1), bins + 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, raw), colour in zip(samples.items(), colours, strict=False):
        v = np.asarray(raw, dtype=float)
        if not v.size:
            continue
        med = float(np.median(v))
        hist.hist(v, bins=edges, alpha=0.5, color=colour, label=f"{name} (median {med:,.0f})")
        hist.axvline(med, color=colour, linestyle="--", linewidth=1)
        s = np.sort(v)
        cdf.step(s, np.arange(1, len(s) + 1) / len(s), where="post", color=colour, label=name)
    for ax in (hist, cdf):
        ax.set_xlabel(xlabel)
        if logx:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    hist.set_ylabel("images")
    cdf.set_ylabel("fraction of the sample")
    cdf.set_ylim(0, 1.02)
    if any(v.size for v in values):
        hist.legend(fontsize=8)
    fig.suptitle(title)
    return save(fig, path)


def pixel_examples(
    path: Path,
    originals: np.ndarray,
    adversarials: np.ndarray,
    pixels: np.ndarray,
    captions: Sequence[tuple[str, str]],
    *,
    title: str,
    columns: int = 4,
) -> Path:
    """Pairs of original and adversarial image with the changed pixels circled.

    Args:
        originals, adversarials: (N, H, W, 3) in [0, 1].
        pixels: (N, d, 2) column and row of each changed pixel.
        captions: Per example, (caption of the original, caption of the adversarial).
    """
    n = len(originals)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(
        rows,
        2 * columns,
        figsize=(2.3 * 2 * columns, 2.5 * rows),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        r, c = divmod(i, columns)
        for k, (img, caption) in enumerate(
            ((originals[i], captions[i][0]), (adversarials[i], captions[i][1]))
        ):
            ax = axes[r][2 * c + k]
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
            ax.set_title(caption, fontsize=7)
            if k == 1:
                for col, row in pixels[i]:
                    ax.add_patch(plt.Circle((col, row), 1.6, fill=False, color="yellow", lw=1.2))
    fig.suptitle(title)
    return save(fig, path)


def pareto_front(points: Mapping[str, tuple[float, float]]) -> list[str]:
    """Labels of the points no other point beats on both counts: lower x and higher y (e.g.
    attack success and clean accuracy), sorted by x."""
    front = [
        name
        for name, (x, y) in points.items()
        if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2 in points.values())
    ]
    return sorted(front, key=lambda n: points[n][0])


def scatter_plot(
    path: Path,
    points: Mapping[str, tuple[float, float]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    front: bool = True,
) -> Path:
    """Labelled points; with `front`, the Pareto front (lower x, higher y) joined by a line."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    same: dict[tuple[float, float], list[str]] = {}
    for name, xy in points.items():  # points that coincide share one label
        same.setdefault(xy, []).append(name)
    xs, ys = [p[0] for p in same], [p[1] for p in same]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float]] = []
    for (x, y), names in sorted(same.items()):
        ax.scatter([x], [y], s=28)
        # Labels of nearby points would print over each other: push each one below the last.
        near = sum(abs(x - px) < 0.12 * span_x and abs(y - py) < 0.06 * span_y for px, py in placed)
        placed.append((x, y))
        ax.annotate(
            "\n".join(names),
            (x, y),
            textcoords="offset points",
            xytext=(4, 4 - 10 * near),
            fontsize=7,
        )
    if front and points:
        best = pareto_front(points)
        ax.plot(
            [points[n][0] for n in best],
            [points[n][1] for n in best],
            "k--",
            lw=1,
            label="Pareto front",
        )
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save(fig, path)
