"""GitHub Actions workflow commands: `::error` for FAIL and `::warning` for NON-STRICT, at the YAML line of
the deciding step, so findings show up as annotations on the scenario files.

Format: https://docs.github.com/actions/reference/workflow-commands-for-github-actions (property values
escape `%`, CR, LF, `:` and `,`; messages escape `%`, CR and LF).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import findings as fnd

__all__ = ["annotations", "github_enabled", "relative_path"]

_MAX_MESSAGE = 4000
DASH = "\u2014"


_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _data(text: str) -> str:
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)  # a log line must not carry controls
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _prop(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def github_enabled(flag: bool) -> bool:
    """--github, or automatically inside GitHub Actions."""
    return flag or os.environ.get("GITHUB_ACTIONS") == "true"


def relative_path(path: str, root: Path | None = None) -> str:
    """A scenario path as the repository sees it: relative to the workspace (or cwd) when under it, `/`."""
    root = root or Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd())
    p = Path(path)
    if p.is_absolute():
        try:
            p = p.resolve().relative_to(root.resolve())
        except ValueError:
            return p.as_posix()
    return p.as_posix()


def annotations(doc: Mapping[str, Any], root: Path | None = None) -> Iterator[str]:
    """One workflow command per FAIL / NON-STRICT finding (baselined ones are accepted: not annotated)."""
    for label, items in fnd.findings_by_target(doc, include_baselined=False).items():
        for f in items:
            command = "error" if f.outcome == "fail" else "warning"
            title = f"{f.outcome.upper()} {f.id} [{label}] ({f.level}, {f.where})"
            quote = str(f.result.get("quote") or "")
            message = "\n".join(x for x in (
                f.title,
                f"RFC {f.rfc} \u00a7{f.section}: \u201c{quote}\u201d" if quote else "",
                f"Expected: {f.expected or DASH}",
                f"Actual:   {f.actual or DASH}",
                f"Reproduce: {f.result.get('reproduce')}" if f.result.get("reproduce") else "",
            ) if x)
            if len(message) > _MAX_MESSAGE:
                message = message[: _MAX_MESSAGE - 1] + "\u2026"
            yield (f"::{command} file={_prop(relative_path(f.file, root))},line={f.line},"
                   f"title={_prop(title)}::{_data(message)}")
