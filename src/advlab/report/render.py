"""Reports as markdown and as one self-contained HTML file (figures embedded, opens offline).

A report follows the structure the labs ask for (seed 000): Methodology, Results, Analysis.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import markdown

SECTIONS = ("Methodology", "Results", "Analysis")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:60rem;
margin:2rem auto;padding:0 1rem;line-height:1.5;color:#1d1d1f}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto}code{background:#f4f4f4;padding:0 .2rem}
pre{background:#f4f4f4;padding:.6rem;overflow-x:auto}figcaption,.caption{color:#555;font-size:.9rem}
"""


def fmt(value: Any, digits: int = 4) -> str:
    """Format a table cell: floats to `digits` significant places, others as str."""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def percent(value: float | None, digits: int = 1) -> str:
    """A fraction as a percentage cell ('38.5%'); None as a dash."""
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def rate_cell(summary: Mapping[str, Any], key: str = "success_rate", digits: int = 1) -> str:
    """A rate and its 95% interval as every report writes them, e.g. ``"43.0% (36.2-50.1)"``.

    `summary` holds `key` and ``KEY_ci`` (`advlab.analysis.robustness.attack_summary`:
    ``success_rate``, ``robust_accuracy``), or, for ``key="rate"``, ``rate`` and ``ci``
    (`success_rate`). A missing rate is a dash."""
    value = summary.get(key)
    if value is None or value != value:  # None or NaN: nothing was attacked
        return "—"
    low, high = summary["ci" if key == "rate" else f"{key}_ci"]
    return f"{percent(value, digits)} ({100 * low:.{digits}f}-{100 * high:.{digits}f})"


def md_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A markdown table from a list of dicts (columns default to the first row's keys)."""
    if not rows:
        return "_(no rows)_\n"
    cols = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(fmt(row.get(c, "")) for c in cols) + " |" for row in rows]
    return "\n".join(lines) + "\n"


class Report:
    """A report under construction: a title, then text, tables and figures per section.

    Args:
        title: The report's title (first heading).
        run_dir: The run folder; figure paths are written relative to it.
    """

    def __init__(self, title: str, run_dir: Path) -> None:
        self.title = title
        self.run_dir = Path(run_dir)
        self._sections: dict[str, list[str]] = {}
        self._intro: list[str] = []

    def intro(self, text: str) -> None:
        self._intro.append(text.strip() + "\n")

    def _add(self, section: str, block: str) -> None:
        self._sections.setdefault(section, []).append(block.rstrip() + "\n")

    def text(self, section: str, text: str) -> None:
        self._add(section, text.strip())

    def table(self, section: str, rows: Sequence[dict[str, Any]], caption: str = "") -> None:
        block = md_table(rows)
        self._add(section, (f"**{caption}**\n\n" if caption else "") + block)

    def figure(self, section: str, path: Path, caption: str) -> None:
        rel = os.path.relpath(path, self.run_dir)
        self._add(section, f"![{caption}]({rel})\n\n*{caption}*")

    def markdown(self) -> str:
        parts = [f"# {self.title}\n", *self._intro]
        ordered = [s for s in SECTIONS if s in self._sections]
        ordered += [s for s in self._sections if s not in SECTIONS]
        for section in ordered:
            parts.append(f"\n## {section}\n")
            parts += [block + "\n" for block in self._sections[section]]
        return "\n".join(parts)


_IMG = re.compile(r'<img alt="([^"]*)" src="([^"]+)"')


def render_html(md_text: str, base_dir: Path, title: str = "advlab report") -> str:
    """Markdown to one HTML page; local images are embedded as data URIs."""
    body = markdown.markdown(md_text, extensions=["tables", "fenced_code"])

    def embed(match: re.Match[str]) -> str:
        alt, src = match.group(1), match.group(2)
        root = Path(base_dir).resolve()
        path = (root / html.unescape(src)).resolve()
        # Only the run folder's own files are embedded: a report never pulls in other files.
        if root not in path.parents or not path.is_file():
            return match.group(0)
        mime = {"png": "image/png", "svg": "image/svg+xml", "jpg": "image/jpeg"}.get(
            path.suffix.lower().lstrip("."), "application/octet-stream"
        )
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img alt="{alt}" src="data:{mime};base64,{data}"'

    body = _IMG.sub(embed, body)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
