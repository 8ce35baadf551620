"""JUnit XML: written from the results (`write_junit`, the command line's --junit and --smtp-junit), or
pytest's --junitxml file with NON-STRICT made visible (`mark_non_strict`).

pytest records NON-STRICT as a plain pass, so CI test views would never show a SHOULD broken. Per
`--junit-non-strict` a NON-STRICT testcase is `skipped` (default: visible with its message, the run's exit
code unchanged), `failure` (red in the test view; the exit code still follows --strict) or `pass`. The
message carries the RFC sentence, expected / actual and the transcript; FAIL testcases carry the failure
report. `write_junit` streams one testcase at a time from the results (as the results JSON is written), so
neither pytest's junitxml nor this file holds a run's worth of XML in memory.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ..failure import format_failure
from ..results import fails_run
from .findings import expected_actual

__all__ = ["JUNIT_NON_STRICT_MODES", "DEFAULT_NON_STRICT_MODE", "non_strict_text", "mark_non_strict", "write_junit"]

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


# ----- written from the results --------------------------------------------------------------------------
_SKIPPED = ("unsupported", "skipped")


def _kind(r: Mapping[str, Any], strict: bool, mode: str) -> str:
    """What the testcase records: "failure", "skipped", "non-strict" (its own element per mode) or "pass"."""
    outcome = str(r.get("outcome"))
    if outcome in _SKIPPED:
        return "skipped"
    if r.get("baselined"):
        return "pass"  # a known deviation with its reason in the baseline: not a failure, as in pytest
    if fails_run(outcome, strict):
        return "failure"
    if outcome == "non-strict" and mode != "pass":
        return "non-strict"
    return "pass"


def _testcase(r: Mapping[str, Any], kind: str, mode: str) -> str:
    nodeid = str(r.get("nodeid") or f"{r.get('file')}::{r.get('id')}[{r.get('target')}]")
    classname, name = _junit_address(nodeid)
    head = (f"<testcase classname={quoteattr(_clean(classname))} name={quoteattr(_clean(name))} "
            f'time="{_seconds(r.get("duration_s")):.3f}"><properties><property name="smtp_outcome" '
            f"value={quoteattr(str(r.get('outcome')))} /></properties>")
    if kind == "skipped":
        message = _clean(f"{r.get('outcome')}: {r.get('message') or ''}")
        return f'{head}<skipped type="pytest.skip" message={quoteattr(message)} /></testcase>'
    if kind == "failure":
        expected, actual = expected_actual(r)
        message = _clean(f"{str(r.get('outcome')).upper()} ({r.get('level')}, RFC {r.get('rfc')} \u00a7"
                         f"{r.get('section')}): expected {expected or '-'} / actual {actual or '-'}")
        text = _clean(format_failure(dict(r)))
        return f"{head}<failure message={quoteattr(message)}>{escape(text)}</failure></testcase>"
    if kind == "non-strict":
        message, text = non_strict_text(r)
        element = "failure" if mode == "failure" else "skipped"
        return (f'{head}<{element} message={quoteattr(message)} type="smtp-conformance.NON-STRICT">'
                f"{escape(text)}</{element}></testcase>")
    return f"{head}</testcase>"


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def write_junit(document: Mapping[str, Any], path: Path, mode: str = DEFAULT_NON_STRICT_MODE,
                full: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """The results document as JUnit XML (one testsuite, one testcase per result, in the document's order).

    `full` gives a result's entry with its whole transcript (the results spool keeps them on disk); it is
    called only for the results whose testcase carries a report, one at a time."""
    results = list(document.get("results") or [])
    run = document.get("run") or {}
    strict = bool(run.get("strict"))
    kinds = [_kind(r, strict, mode) for r in results]
    failures = kinds.count("failure") + (kinds.count("non-strict") if mode == "failure" else 0)
    skipped = kinds.count("skipped") + (kinds.count("non-strict") if mode == "skipped" else 0)
    seconds = _seconds(run.get("duration_s"))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<testsuites name="smtp-conformance">')
        out.write(f'<testsuite name="smtp-conformance" errors="0" failures="{failures}" skipped="{skipped}" '
                  f'tests="{len(results)}" time="{seconds:.3f}" timestamp={quoteattr(str(run.get("started", "")))} '
                  f"hostname={quoteattr(socket.gethostname())}>\n")
        for r, kind in zip(results, kinds, strict=True):
            if full is not None and kind in ("failure", "non-strict"):
                r = full(r)
            out.write(_testcase(r, kind, mode) + "\n")
        out.write("</testsuite></testsuites>\n")
    tmp.replace(path)
