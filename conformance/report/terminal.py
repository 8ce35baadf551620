"""The findings-first summary for the terminal: a few lines after the run, the same order as the reports.

Colour only when the stream is a terminal and NO_COLOR is unset (https://no-color.org).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, TextIO

from . import findings as fnd

__all__ = ["summary_lines", "use_color"]

MAX_PER_TARGET = 8
_COLOURS = {"fail": "\x1b[1;31m", "non-strict": "\x1b[1;33m", "head": "\x1b[1m", "muted": "\x1b[2m"}
_RESET = "\x1b[0m"
_WORD = {"fail": "FAIL", "non-strict": "NON-STRICT"}


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _short(text: str, limit: int = 70) -> str:
    """Server text is stored escaped; a hostile document must still not drive the terminal: controls as \\xHH."""
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def summary_lines(doc: Mapping[str, Any], color: bool = False, per_target: int = MAX_PER_TARGET) -> list[str]:
    """Per target: counts of FAIL / NON-STRICT, the first findings (one line each), why others could not run."""

    def paint(kind: str, text: str) -> str:
        return f"{_COLOURS[kind]}{text}{_RESET}" if color else text

    found = fnd.findings_by_target(doc)
    blocked = fnd.blocked_by_target(doc)
    lines = []
    for label in fnd.targets_of(doc):
        items = found.get(label, [])
        n_fail = sum(1 for f in items if f.outcome == "fail")
        n_ns = len(items) - n_fail
        head = f"{_short(label, 60)}: {n_fail} FAIL, {n_ns} NON-STRICT"
        lines.append(paint("head", head))
        for f in items[:per_target]:
            word = _WORD.get(f.outcome, f.outcome.upper())
            base = " (baselined)" if f.result.get("baselined") else ""
            lines.append(f"  {paint(f.outcome, f'{word:<10}')} {f.where:<18} {_short(f.id, 120)}{base}: expected "
                         f"{_short(f.expected or '-', 40)} / actual {_short(f.actual or '-')}  "
                         + paint("muted", f"{f.file}:{f.line}"))
        if len(items) > per_target:
            lines.append(paint("muted", f"  \u2026 {len(items) - per_target} more in the HTML report"))
        reasons = blocked.get(label, [])
        if reasons:
            lines.append(paint("muted", "  could not run: " + ", ".join(f"{b.reason} {b.count}" for b in reasons)))
    return lines
