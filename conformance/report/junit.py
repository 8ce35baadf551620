"""NON-STRICT in JUnit XML: pytest records it as a plain pass, so CI test views never show a SHOULD broken.

After pytest's junitxml plugin wrote the file, each NON-STRICT testcase gets, per `--junit-non-strict`:
`skipped` (default: visible with its message, the run's exit code unchanged), `failure` (red in the test
view; the exit code still follows --strict) or `pass` (left as pytest wrote it). The message carries the
RFC sentence, expected / actual and the transcript. FAIL testcases already carry the failure report.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .findings import expected_actual

__all__ = ["JUNIT_NON_STRICT_MODES", "DEFAULT_NON_STRICT_MODE", "non_strict_text", "mark_non_strict"]

JUNIT_NON_STRICT_MODES = ("skipped", "failure", "pass")
DEFAULT_NON_STRICT_MODE = "skipped"
_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TRANSCRIPT_MAX = 200


def _clean(text: str) -> str:
    """XML 1.0 cannot carry most control characters: show them as \\xHH (server text is escaped anyway)."""
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def non_strict_text(r: Mapping[str, Any]) -> tuple[str, str]:
    """(one-line message, full text) for a NON-STRICT result."""
    expected, actual = expected_actual(r)
    head = (f"NON-STRICT ({r.get('level')}, RFC {r.get('rfc')} \u00a7{r.get('section')}): "
            f"expected {expected or '-'} / actual {actual or '-'}")
    lines = [head, f"RFC: \u201c{r.get('quote') or ''}\u201d", str(r.get("message") or "")]
    transcript = r.get("transcript") or []
    if transcript:
        lines += ["", "Transcript:"]
        for entry in transcript[:_TRANSCRIPT_MAX]:
            if isinstance(entry, Mapping):
                t = entry.get("t")
                stamp = f"{t:8.3f}" if isinstance(t, int | float) else "        "
                lines.append(f"{stamp} {entry.get('dir')}: {entry.get('data')}")
        if len(transcript) > _TRANSCRIPT_MAX:
            lines.append(f"\u2026 {len(transcript) - _TRANSCRIPT_MAX} more entries in the JSON/HTML report")
    if r.get("reproduce"):
        lines += ["", f"Reproduce: {r['reproduce']}"]
    return _clean(head), _clean("\n".join(lines))


def _junit_address(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml derives them from a node id."""
    names = nodeid.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    return ".".join(names[:-1]), names[-1]


def mark_non_strict(path: Path, results: Iterable[Mapping[str, Any]], mode: str = DEFAULT_NON_STRICT_MODE) -> int:
    """Rewrite the JUnit file at `path`; returns how many testcases were marked."""
    if mode == "pass" or not Path(path).is_file():
        return 0
    wanted: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in results:
        if r.get("outcome") == "non-strict" and r.get("nodeid") and not r.get("baselined"):
            wanted[_junit_address(str(r["nodeid"]))] = r
    if not wanted:
        return 0
    tree = ET.parse(path)
    marked = 0
    for suite in tree.getroot().iter("testsuite"):
        delta = 0
        for case in suite.iter("testcase"):
            classname, name = case.get("classname", ""), case.get("name", "")
            r = wanted.get((classname, name)) or next(
                (v for (c, n), v in wanted.items() if n == name and classname.endswith(c)), None)
            if r is None or case.find("failure") is not None or case.find("skipped") is not None:
                continue  # already failed (--strict) or skipped: pytest's own record stays
            message, text = non_strict_text(r)
            element = ET.SubElement(case, "failure" if mode == "failure" else "skipped",
                                    {"message": message, "type": "smtp-conformance.NON-STRICT"})
            element.text = text
            delta += 1
        if delta:
            key = "failures" if mode == "failure" else "skipped"
            suite.set(key, str(int(suite.get(key, "0") or 0) + delta))
            marked += delta
    if marked:
        tree.write(path, encoding="utf-8", xml_declaration=True)
    return marked
