"""One failure as every page shows it: what was expected, what came back, where in the YAML, the transcript.

Read from a results entry (docs/results-format.md). The terminal and JUnit (`format_failure`), the HTML report
and the grading pages all render this one model, so they cannot disagree about a failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import Cause

# One line per cause, for people; programs use the cause itself.
CAUSE_NOTES: dict[str, str] = {
    Cause.REFUSED: "could not connect to the server",
    Cause.TIMEOUT: "the server did not answer within the reply timeout",
    Cause.SCENARIO_TIMEOUT: "the dialogue did not finish within its time budget",
    Cause.TIME_LIMIT: "not run: the target's time limit was used up",
    Cause.CLOSED: "the server closed the connection",
    Cause.RESET: "the server reset the connection",
    Cause.MALFORMED: "the server sent something that is not a valid SMTP reply",
    Cause.REPLY_MISMATCH: "the reply is not one the step allows",
    Cause.NOT_DELIVERED: "the mailbox does not hold what the step expects",
    Cause.SETUP_REFUSED: "the server refused a setup step before the checked one: not a violation",
    Cause.TRANSIENT: "the server is unavailable for now (421/454): nothing to judge",
    Cause.UNSUPPORTED_EXTENSION: "the server does not advertise an extension the scenario needs",
    Cause.MISSING_PARAMETER: "the target lacks a parameter the scenario needs",
    Cause.TLS: "a TLS handshake failed",
    Cause.NO_GREETING: "the server sent no usable greeting: no scenario could run",
    Cause.NOT_STARTED: "the target could not be started",
    Cause.HARNESS: "the suite could not do its part",
}


def display_text(value: Any) -> str:
    """A value as display text: None → "", containers → compact JSON, others → str() (results documents
    may come from anywhere: a page shows what is there rather than failing)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass(frozen=True)
class TranscriptRow:
    """One transcript entry: `side` is c (client), s (server) or e (an event)."""

    t: str  # seconds since the dialogue began, 3 decimals, right-aligned to 8 columns
    dir: str  # as recorded: C, S or *
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
        data = display_text(entry.get("data"))
        if max_chars is not None and len(data) > max_chars:
            data = data[:max_chars] + f" … ({len(data) - max_chars} more characters)"
        direction = display_text(entry.get("dir"))
        side, label, arrow = _SIDES.get(direction, ("e", "", "*") if direction in ("*", "") else ("e", direction, "?"))
        rows.append(TranscriptRow(_seconds(entry.get("t")), direction, side, label, arrow, data))
    return rows, len(entries) - len(shown)


def _seconds(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return display_text(value).rjust(8)
    return f"{value:8.3f}"


@dataclass(frozen=True)
class Failure:
    """The decisive step of a result, if any, and everything needed to show why it did not pass."""

    outcome: str
    cause: str | None
    message: str
    step: int | None = None  # 0-based index of the decisive step; None when no step decided
    file: str = ""
    line: Any = None  # the decisive step's line in `file`, as recorded
    yaml: str = ""  # the step as written in the scenario
    expected: list[str] = field(default_factory=list)
    actual: str = ""
    transcript: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, result: Mapping[str, Any]) -> Failure:
        step = result.get("step")
        cause = result.get("cause")
        base = {"outcome": display_text(result.get("outcome")), "cause": cause if isinstance(cause, str) else None,
                "message": display_text(result.get("message")), "transcript": _as_list(result.get("transcript"))}
        if not isinstance(step, Mapping):
            return cls(**base)
        yaml = step.get("yaml")
        if isinstance(yaml, list | tuple):
            yaml = "\n".join(display_text(y) for y in yaml)
        index = step.get("index")
        return cls(**base, step=index if isinstance(index, int) and not isinstance(index, bool) else None,
                   file=display_text(step.get("file")), line=step.get("line"), yaml=display_text(yaml),
                   expected=[display_text(e) for e in _as_list(step.get("expected"))],
                   actual=display_text(step.get("actual")))

    @property
    def cause_note(self) -> str:
        return CAUSE_NOTES.get(self.cause or "", "")

    def expected_text(self, separator: str = " | ") -> str:
        """"X", or "one of X | Y" when several replies were acceptable."""
        if len(self.expected) == 1:
            return self.expected[0]
        return "one of " + separator.join(self.expected) if self.expected else ""

    def rows(self, limit: int | None = None, max_chars: int | None = None) -> tuple[list[TranscriptRow], int]:
        return transcript_rows(self.transcript, limit, max_chars)

    def wire_lines(self, direction: str, max_lines: int = 40, max_chars: int = 400) -> list[str]:
        """Escaped data of one direction (C or S), split into lines at (escaped) line ends."""
        lines: list[str] = []
        pending = ""
        for entry in self.transcript:
            if not isinstance(entry, Mapping) or entry.get("dir") != direction:
                continue
            pending += str(entry.get("data", ""))
            while "\\n" in pending:
                line, pending = pending.split("\\n", 1)
                lines.append(line + "\\n")
        if pending:
            lines.append(pending)
        out = [line if len(line) <= max_chars else line[:max_chars] + " …" for line in lines[:max_lines]]
        if len(lines) > max_lines:
            out.append(f"… {len(lines) - max_lines} more lines")
        return out


def format_failure(r: dict[str, Any], max_rows: int = 200, max_chars: int = 300) -> str:
    """h2spec-style: what the RFC says, what was acceptable, what came back, and the dialogue.

    Bounded whatever the server sent: at most max_rows transcript rows of max_chars characters each."""
    lines = [
        f"{r['id']} [{r['target']}]: {r['outcome'].upper()} ({r['level']}, RFC {r['rfc']} §{r['section']})",
        f"  {r['title']}",
        f"  RFC: \"{r['quote']}\"",
        f"  {r['message']}",
    ]
    failure = Failure.of(r)
    if failure.cause in (Cause.SETUP_REFUSED, Cause.TRANSIENT):  # not a violation: say why it is not
        lines.append(f"  ({failure.cause_note})")
    if failure.step is not None:
        lines.append("")
        lines.append(f"  Step {failure.step + 1} ({failure.file}:{failure.line}):")
        lines.extend("    " + line for line in failure.yaml.splitlines())
        if failure.expected:
            lines.append("  Expected: " + failure.expected_text())
        lines.append(f"  Actual:   {failure.actual}")
    if r.get("findings"):
        lines.append("")
        lines.append("  Findings: " + "; ".join(r["findings"])[:2000])
    rows, left_off = failure.rows(limit=max_rows, max_chars=max_chars)
    if not max_rows and failure.transcript:
        lines += ["", "  Transcript: in the JSON/HTML report (the terminal's budget for transcripts is used up)"]
    if rows:
        lines.append("")
        lines.append("  Transcript:")
        lines.extend(f"    {row.t} {row.dir}: {row.data}" for row in rows)
        if left_off:
            lines.append(f"    … {left_off} more entries in the JSON/HTML report")
    lines.append("")
    lines.append(f"  Reproduce: {r['reproduce']}")
    return "\n".join(lines)
