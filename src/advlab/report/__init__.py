"""Reports: figures and markdown/HTML rendering."""

from advlab.report.render import Report, md_table, percent, rate_cell, render_html

__all__ = ["Report", "md_table", "percent", "rate_cell", "render_html"]
