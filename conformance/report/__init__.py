"""Report renderers for the results document (docs/results-format.md)."""

from conformance.report.html import render_html, write_html

__all__ = ["render_html", "write_html"]
