"""Plain-language explanations for students: why a check did not earn full credit, and how to rerun it."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..failure import Failure
from ..model import Cause
from .rubric import Student

_LEVEL_WORDS = {
    "MUST": "a requirement (MUST)", "MUST NOT": "a prohibition (MUST NOT)",
    "SHOULD": "a recommendation (SHOULD)", "SHOULD NOT": "a recommendation (SHOULD NOT)",
    "MAY": "an option (MAY)", "INFO": "behaviour the RFC leaves open",
}
_MAX_LINES = 40
CRLF, LF = "\\r\\n", "\\n"  # as escaped in transcripts
_MAX_CHARS = 400


def _plain_actual(failure: Failure, timeout: float) -> str:
    """What the server did at the decisive step, for a student; the cause decides, the engine's own wording
    of the observation only supplies the details after it."""
    actual = failure.actual
    if failure.cause == Cause.TIMEOUT:
        return f"did not answer within {timeout:g} s" + actual.removeprefix("no complete reply before the timeout")
    if failure.cause == Cause.CLOSED:
        return "closed the connection" + actual.removeprefix("connection closed by the server")
    if failure.cause == Cause.RESET:
        return "reset the connection (it probably crashed)" + actual.removeprefix("connection reset by the server")
    if failure.cause == Cause.MALFORMED:
        return "sent something that is not a valid SMTP reply: " + actual.removeprefix("malformed reply ")
    return f'answered "{actual}"'


def explain(result: Mapping[str, Any], timeout: float, time_limit: float | None) -> str:
    """One paragraph in plain language: why this check did not earn full credit."""
    failure = Failure.of(result)
    message = failure.message
    level = str(result.get("level") or "")
    if failure.cause == Cause.TIME_LIMIT:
        limit = f"{time_limit:g} s " if time_limit else ""
        return (f"Not run: your server used up its time limit ({limit}for all checks together) before this check "
                "started. Servers that answer slowly, or not at all, make later checks run out of time.")
    if failure.outcome == "error":
        return ("This check could not run: " + message + ". Usually your server was not running at that moment: it "
                "did not start, exited, or crashed during an earlier check (see the server output below).")
    if failure.cause == Cause.SCENARIO_TIMEOUT:
        return ("This check did not finish in time (" + message + "). Your server answered too slowly or stopped "
                "answering; near the end of your time limit a check only gets what is left of it.")
    if failure.cause == Cause.NO_GREETING:
        return ("Your server did not greet properly when a client connected (RFC 5321 requires a first reply "
                "starting with 220), so none of the checks could run. " + message)
    what = _LEVEL_WORDS.get(level, "a rule")
    text = f"This check is {what} of RFC {result.get('rfc')} §{result.get('section')}. "
    sent = [line for line in failure.wire_lines("C", _MAX_LINES, _MAX_CHARS) if line.strip()]
    if sent:
        last = sent[-1].removesuffix(CRLF).removesuffix(LF)
        text += f'After the grader sent "{last}", '
    else:
        text += "When the grader connected, "
    if failure.expected:
        text += "the RFC allows " + " or ".join(failure.expected)
        text += f", but your server {_plain_actual(failure, timeout)}." if failure.actual else f". {message}"
    else:
        text += message
    if failure.outcome == "non-strict":
        text += " A SHOULD is strongly recommended but not absolutely required, so this costs part of the credit."
    elif failure.outcome == "fail":
        text += " Breaking a MUST makes the server non-conformant, so this check earns no credit."
    return text


def reproduce_commands(student: Student, result: Mapping[str, Any]) -> list[str]:
    # the scenario file by its absolute path: the line works from the student's own folder
    node = f"{Path(str(result.get('file'))).resolve()}::{result.get('id')}[{student.label}]"
    if student.kind == "command":
        target = f"{student.label}=cmd:{student.entry['command']}"
    elif student.kind == "address":
        target = f"{student.label}={student.entry['address']}"
    elif student.kind == "image":
        target = f"image:{student.entry['image']}"
    else:
        target = f"{student.label}=builtin"
    return [f"pytest {shlex.quote(node)} --smtp-target {shlex.quote(target)}"]
