"""Reports: figures and markdown/HTML rendering."""

from advlab.report.render import Report, md_table, percent, render_html

__all__ = ["Report", "md_table", "percent", "render_html"]
