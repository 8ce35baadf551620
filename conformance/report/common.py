"""What every page shares: the Jinja environment of report/templates and the transcript rows."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    """One environment for the suite report and the grading pages (templates are compiled once)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@dataclass(frozen=True)
class TranscriptRow:
    """One transcript entry as pages show it: `side` is c (client), s (server) or e (an event)."""

    t: str  # seconds since the dialogue began, right-aligned to 8 columns
    side: str
    label: str  # "C:", "S:" or "" for events
    arrow: str
    data: str


_SIDES = {"C": ("c", "C:", "\u2192"), "S": ("s", "S:", "\u2190")}


def transcript_rows(entries: Iterable[Any], limit: int | None = None,
                    max_chars: int | None = None) -> tuple[list[TranscriptRow], int]:
    """The rows of a results entry's `transcript`, and how many entries were left off after `limit`."""
    entries = list(entries)
    shown = entries if limit is None else entries[:limit]
    rows = []
    for entry in shown:
        entry = entry if isinstance(entry, Mapping) else {}
        data = "" if entry.get("data") is None else str(entry.get("data"))
        if max_chars is not None and len(data) > max_chars:
            data = data[:max_chars] + f" … ({len(data) - max_chars} more characters)"
        direction = "" if entry.get("dir") is None else str(entry.get("dir"))
        side, label, arrow = _SIDES.get(direction, ("e", "", "*" if direction in ("*", "") else "?"))
        rows.append(TranscriptRow(_seconds(entry.get("t")), side, label, arrow, data))
    return rows, len(entries) - len(shown)


def _seconds(value: Any) -> str:
    try:
        return f"{float(value or 0):.3f}".rjust(8)
    except (TypeError, ValueError):
        return "".rjust(8)
