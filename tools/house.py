"""advlab's house: the floors of `src/advlab/`, its import graph, and a picture of both.

Every top-level module or package of `advlab` (a "room") stands on one floor; a room may import
rooms on lower floors only, never one on its own floor or above. `tests/test_architecture.py`
checks that against the code (every ``import advlab...`` and ``from advlab... import``, also
those inside functions), and that no file grows past `MAX_LINES` except the ones listed in
`LONG_FILES` with the reason.

    .venv/bin/python tools/house.py            # writes docs/img/architecture.png, prints arrows
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "advlab"

# Lowest first. A room imports only rooms of floors below its own.
FLOORS: list[tuple[str, tuple[str, ...]]] = [
    ("errors", ("errors",)),
    ("ground", ("registry", "validation", "fileio", "progress", "seeding", "runtime", "__init__")),
    ("services", ("overrides", "backends")),
    ("leaves", ("analysis", "models", "scratch", "runs")),
    ("data and reports", ("data", "report")),
    ("library", ("classic", "train", "attacks", "emotion", "shards")),
    ("defences", ("defenses",)),
    ("evaluation", ("evaluation",)),
    ("experiments", ("experiments",)),
    ("sweeps", ("sweep",)),
    ("command line", ("cli",)),
    ("entry point", ("__main__",)),
]
MAX_LINES = 600
LONG_FILES: dict[str, str] = {
    "classic/knn.py": "one algorithm: exact k-NN with its chunked L1/L2 search, voting and "
    "cross-validation, and the C-kernel fallback",
    "data/registry.py": "the dataset registry: one declaration per dataset (files, checksums, "
    "decoders) for six datasets",
    "train/export.py": "one job: writing a model as Keras 3 H5 and ONNX, layer by layer",
}


def room(module: str) -> str:
    """``advlab.attacks.base`` -> ``attacks``; ``advlab`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports() -> dict[tuple[str, str], list[str]]:
    """``{(from room, to room): [importing modules]}`` over every advlab import in the code."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target == "advlab" or target.startswith("advlab."):
                    a, b = room(name), room(target)
                    if a != b and name not in edges[(a, b)]:
                        edges[(a, b)].append(name)
    return dict(edges)


def floor_of() -> dict[str, int]:
    return {r: i for i, (_, rooms) in enumerate(FLOORS) for r in rooms}


def rooms_on_disk() -> set[str]:
    return {room(name) for name in modules()}


def upward(edges: dict[tuple[str, str], list[str]]) -> list[str]:
    """Arrows that do not point to a lower floor, as readable lines."""
    floor = floor_of()
    bad = []
    for (a, b), where in sorted(edges.items()):
        if a not in floor or b not in floor:
            bad.append(f"{a} -> {b}: a room without a floor in tools/house.py ({where[0]})")
        elif floor[b] >= floor[a]:
            bad.append(f"{a} (floor {floor[a]}) -> {b} (floor {floor[b]}) in {', '.join(where)}")
    return bad


def line_counts() -> dict[str, int]:
    return {str(p.relative_to(SRC)): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}


def draw(path: Path) -> None:
    """The house as a picture: floors bottom to top, rooms sized by lines, arrows = imports."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, Rectangle

    counts = line_counts()
    size: dict[str, int] = defaultdict(int)
    for rel, n in counts.items():
        dotted = rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        size[room("advlab." + dotted)] += n
    width = 100.0
    boxes: dict[str, tuple[float, float, float, float]] = {}
    fig, ax = plt.subplots(figsize=(15, 11))
    floors = [[r for r in rooms if size.get(r)] for _, rooms in FLOORS]
    # One scale for every floor (area = lines), small rooms kept readable.
    scale = min(
        (width - 0.8 * (len(p) - 1) - 8.5 * len(p)) / sum(size[r] for r in p) for p in floors if p
    )
    for level, ((label, _), present) in enumerate(zip(FLOORS, floors, strict=True)):
        y, h = level * 1.0, 0.62
        widths = [8.5 + scale * size[r] for r in present]
        x = (width - sum(widths) - 0.8 * (len(present) - 1)) / 2
        for r, w in zip(present, widths, strict=True):
            boxes[r] = (x, y, w, h)
            ax.add_patch(
                Rectangle(
                    (x, y),
                    w,
                    h,
                    facecolor=f"C{level % 10}",
                    alpha=0.25,
                    edgecolor="black",
                    linewidth=0.8,
                )
            )
            name = "advlab" if r == "__init__" else r + ("/" if (SRC / r).is_dir() else ".py")
            ax.text(x + 0.4, y + h - 0.08, name, va="top", fontsize=8, weight="bold")
            ax.text(x + w - 0.4, y + 0.06, f"{size[r]:,}", ha="right", fontsize=7)
            x += w + 0.8
        ax.text(-2, y + h / 2, label, ha="right", va="center", fontsize=9, style="italic")
    drawn = [(a, b) for (a, b) in imports() if a in boxes and b in boxes and b != "errors"]
    for a, b in drawn:  # the arrows into errors.py (every room raises advlab's errors) left out
        xa, ya, wa, _ = boxes[a]
        xb, yb, wb, hb = boxes[b]
        ax.add_patch(
            FancyArrowPatch(
                (xa + wa / 2, ya),
                (xb + wb / 2, yb + hb),
                arrowstyle="-|>",
                mutation_scale=7,
                color="0.45",
                linewidth=0.5,
                alpha=0.6,
                connectionstyle="arc3,rad=0.08",
            )
        )
    total_lines = sum(counts.values())
    ax.set_title(
        f"advlab's house: {len(boxes)} rooms on {len(FLOORS)} floors, "
        f"{total_lines:,} lines; {len(drawn)} arrows (room imports room, those into "
        "errors.py left out), every one pointing down",
        fontsize=11,
    )
    ax.set_xlim(-14, width + 2)
    ax.set_ylim(-0.3, len(FLOORS))
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    edges = imports()
    for (a, b), where in sorted(edges.items()):
        print(f"{a:>12} -> {b:<12} {len(where)} module(s)")
    bad = upward(edges)
    for line in bad:
        print("UPWARD:", line)
    draw(REPO / "docs" / "img" / "architecture.png")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
