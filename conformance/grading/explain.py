"""Plain-language explanations for students: why a check did not earn full credit, and how to rerun it."""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any

from .rubric import NOT_RUN, Student

_LEVEL_WORDS = {
    "MUST": "a requirement (MUST)", "MUST NOT": "a prohibition (MUST NOT)",
    "SHOULD": "a recommendation (SHOULD)", "SHOULD NOT": "a recommendation (SHOULD NOT)",
    "MAY": "an option (MAY)", "INFO": "behaviour the RFC leaves open",
}
_MAX_LINES = 40
CRLF, LF = "\\r\\n", "\\n"  # as escaped in transcripts
_MAX_CHARS = 400


def _plain_actual(actual: str, timeout: float) -> str:
    if actual.startswith("no complete reply before the timeout"):
        return f"did not answer within {timeout:g} s" + (actual[len("no complete reply before the timeout"):] or "")
    if actual.startswith("connection closed by the server"):
        return "closed the connection" + actual[len("connection closed by the server"):]
    if actual.startswith("connection reset by the server"):
        return "reset the connection (it probably crashed)" + actual[len("connection reset by the server"):]
    if actual.startswith("malformed reply"):
        return "sent something that is not a valid SMTP reply: " + actual[len("malformed reply "):]
    return f'answered "{actual}"'


def _wire_lines(transcript: Iterable[Mapping[str, Any]], direction: str) -> list[str]:
    """Escaped transcript data of one direction, split into lines at (escaped) line ends."""
    lines: list[str] = []
    pending = ""
    for entry in transcript:
        if entry.get("dir") != direction:
            continue
        pending += str(entry.get("data", ""))
        while "\\n" in pending:
            line, pending = pending.split("\\n", 1)
            lines.append(line + "\\n")
    if pending:
        lines.append(pending)
    out = [line if len(line) <= _MAX_CHARS else line[:_MAX_CHARS] + " …" for line in lines[:_MAX_LINES]]
    if len(lines) > _MAX_LINES:
        out.append(f"… {len(lines) - _MAX_LINES} more lines")
    return out


def explain(result: Mapping[str, Any], timeout: float, time_limit: float | None) -> str:
    """One paragraph in plain language: why this check did not earn full credit."""
    outcome = result.get("outcome")
    message = str(result.get("message") or "")
    level = str(result.get("level") or "")
    if message.startswith(NOT_RUN):
        limit = f"{time_limit:g} s " if time_limit else ""
        return (f"Not run: your server used up its time limit ({limit}for all checks together) before this check "
                "started. Servers that answer slowly, or not at all, make later checks run out of time.")
    if outcome == "error":
        return ("This check could not run: " + message + ". Usually your server was not running at that moment: it "
                "did not start, exited, or crashed during an earlier check (see the server output below).")
    if message.startswith("scenario did not finish within"):
        return ("This check did not finish in time (" + message + "). Your server answered too slowly or stopped "
                "answering; near the end of your time limit a check only gets what is left of it.")
    if "no usable greeting" in message:
        return ("Your server did not greet properly when a client connected (RFC 5321 requires a first reply "
                "starting with 220), so none of the checks could run. " + message)
    step = result.get("step") or {}
    expected = [str(e) for e in step.get("expected") or []]
    actual = str(step.get("actual") or "")
    what = _LEVEL_WORDS.get(level, "a rule")
    text = f"This check is {what} of RFC {result.get('rfc')} §{result.get('section')}. "
    sent = [line for line in _wire_lines(result.get("transcript") or [], "C") if line.strip()]
    if sent:
        last = sent[-1].removesuffix(CRLF).removesuffix(LF)
        text += f'After the grader sent "{last}", '
    else:
        text += "When the grader connected, "
    if expected:
        text += "the RFC allows " + " or ".join(expected)
        text += f", but your server {_plain_actual(actual, timeout)}." if actual else f". {message}"
    else:
        text += message
    if outcome == "non-strict":
        text += " A SHOULD is strongly recommended but not absolutely required, so this costs part of the credit."
    elif outcome == "fail":
        text += " Breaking a MUST makes the server non-conformant, so this check earns no credit."
    return text


def reproduce_commands(student: Student, result: Mapping[str, Any]) -> list[str]:
    node = f"{result.get('file')}::{result.get('id')}[{student.label}]"
    if student.kind == "command":
        target = f"{student.label}=cmd:{student.entry['command']}"
    elif student.kind == "address":
        target = f"{student.label}={student.entry['address']}"
    elif student.kind == "image":
        target = f"image:{student.entry['image']}"
    else:
        target = f"{student.label}=builtin"
    return [f"pytest {shlex.quote(node)} --smtp-target {shlex.quote(target)}"]
