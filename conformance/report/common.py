"""What every page shares: the Jinja environment of report/templates."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from ..failure import display_text as _s

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    """One environment for the suite report and the grading pages (templates are compiled once)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["wire"] = wire_markup
    env.filters["visible"] = visible_markup
    return env


# Server bytes arrive escaped (docs/results-format.md, "Escaping"); these show them as visible, styled
# escapes. Raw control characters (which must not occur, but hostile data is hostile) are made visible too.
_WIRE_RE = re.compile(r"\\r\\n|\\(?:\\|r|n|t|0|x[0-9a-fA-F]{2})|[\x00-\x1f\x7f]")
_CTL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# CR LF stay `\\r\\n` (styled): the control-picture glyphs are missing from common fonts
_WIRE_GLYPHS = {"\\0": "\\x00"}


def _esc_span(text: str) -> str:
    return f'<i class="e">{text}</i>'


def _wire_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if token == "\\\\":
        return "\\"
    if len(token) == 1:  # a raw control character
        return _esc_span(f"\\x{ord(token):02x}")
    return _esc_span(_WIRE_GLYPHS.get(token, token.lower()))


def wire_markup(value: Any) -> Markup:
    """Escaped server bytes as HTML: `\\r\\n`, `\\xHH` … each in a styled span, so they stand out from text."""
    html = str(escape(_s(value)))  # & < > " ' first; the escape notation has none of them
    if not _WIRE_RE.search(html):
        return Markup(html)
    return Markup(_WIRE_RE.sub(_wire_token, html))


def visible_text(value: Any) -> str:
    """Plain text with raw control characters (other than TAB, LF, CR) written as \\xHH: for attributes."""
    text = _s(value)
    return _CTL_RE.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text) if _CTL_RE.search(text) else text


def visible_markup(value: Any) -> Markup:
    """Text (YAML, quotes, titles) as HTML with raw control characters shown as styled \\xHH escapes."""
    text = str(escape(_s(value)))
    if not _CTL_RE.search(text):
        return Markup(text)
    return Markup(_CTL_RE.sub(lambda m: _esc_span(f"\\x{ord(m.group(0)):02x}"), text))

