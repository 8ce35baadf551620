"""Result entries and the results document (docs/results-format.md): the layer reports read."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import __version__
from .dialogue import DialogueResult
from .model import Outcome, Scenario

FORMAT_VERSION = 1
OUTCOME_ORDER = [o.value for o in Outcome]


@dataclass
class Result:
    """One scenario against one target: the entry of the results document (docs/results-format.md).

    `as_json` is the one place an entry's JSON form is written; everything after the runner (pytest
    plugin, reports, grading) reads that form."""

    id: str
    title: str
    target: str
    outcome: str
    level: str
    rfc: str
    section: str
    quote: str
    requirements: list[str]
    profiles: list[str]  # the server profiles the scenario applies to (empty: every profile)
    tags: list[str]
    requires: list[str]  # with `needs`: lets reports say why a scenario could not run
    needs: list[str]
    file: str
    line: int
    nodeid: str = ""
    reproduce: str = ""
    duration_s: float = 0.0
    message: str = ""
    cause: str | None = None  # a conformance.model.Cause value, or None when nothing went wrong
    profile_skip: str | None = None  # why the scenario was skipped for the target's profile
    missing: list[str] = field(default_factory=list)  # UNSUPPORTED for want of these target parameters
    branch: str | None = None
    step: dict[str, Any] | None = None
    codes: list[int | None] = field(default_factory=list)
    decisive_code: int | None = None
    connection: str = "open"
    findings: list[str] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, scenario: Scenario, target: str, outcome: Outcome, message: str,
           dialogue: DialogueResult | None = None, cause: str | None = None,
           missing: list[str] | None = None) -> Result:
        result = cls(
            id=scenario.id, title=scenario.title, target=target, outcome=outcome.value,
            level=scenario.level.value, rfc=scenario.rfc, section=scenario.section, quote=scenario.quote,
            requirements=list(scenario.requirements), profiles=list(scenario.profiles), tags=list(scenario.tags),
            requires=list(scenario.requires), needs=list(scenario.needs), file=scenario.file,
            line=scenario.line, message=message, cause=None if cause is None else str(cause),
            missing=list(missing or []),
        )
        if dialogue is not None:
            result.duration_s = dialogue.duration_s
            result.cause = result.cause or (None if dialogue.cause is None else str(dialogue.cause))
            result.branch = "; ".join(dialogue.branch) or None
            result.step = dialogue.decisive.as_json() if dialogue.decisive else None
            result.codes = list(dialogue.codes)
            result.decisive_code = dialogue.decisive_code
            result.connection = dialogue.connection
            result.findings = list(dialogue.findings)
            result.transcript = dialogue.transcript.as_json()
        return result

    def as_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _RESULT_FIELDS}


_RESULT_FIELDS = tuple(f.name for f in fields(Result))  # dataclasses.fields() is slow to ask per result


def result_entry(scenario: Scenario, target: str, outcome: Outcome, message: str,
                 dialogue: DialogueResult | None = None, cause: str | None = None,
                 missing: list[str] | None = None) -> dict[str, Any]:
    """A results entry in its JSON form (what the runner hands the pytest plugin)."""
    return Result.of(scenario, target, outcome, message, dialogue, cause, missing).as_json()


# What to add when scenarios were UNSUPPORTED only for want of a target parameter
PARAMETER_OPTIONS = {
    "mailbox": ("no mailbox was given", "--mailbox KIND:WHERE (maildir:PATH, mailhog:URL, mailpit:URL, maildev:URL, "
                "pop3://USER:PASS@HOST:PORT, imap://USER:PASS@HOST:PORT/INBOX; pytest: --smtp-mailbox)"),
    "credentials": ("no credentials were given", "--auth USER:PASSWORD (pytest: --smtp-auth)"),
}


def missing_parameter_hints(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target and parameter: how many scenarios were UNSUPPORTED only because that parameter was not
    given, and the option that gives it (for the terminal summary and the report)."""
    counts: Counter[tuple[str, str]] = Counter()
    for r in results:
        missing = r.get("missing") or []
        if r.get("outcome") == "unsupported" and len(missing) == 1 and missing[0] in PARAMETER_OPTIONS:
            counts[(str(r.get("target", "")), missing[0])] += 1
    return [{"target": target, "parameter": name, "count": n, "reason": PARAMETER_OPTIONS[name][0],
             "option": PARAMETER_OPTIONS[name][1]} for (target, name), n in counts.items()]


def missing_parameter_lines(results: list[dict[str, Any]]) -> list[str]:
    return [f"{h['target']}: {h['count']} scenario{'s' if h['count'] != 1 else ''} UNSUPPORTED only because "
            f"{h['reason']}; to run {'them' if h['count'] != 1 else 'it'}, add {h['option']}"
            for h in missing_parameter_hints(results)]


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    overall = Counter(r["outcome"] for r in results)
    per_target: dict[str, Counter[str]] = {}
    for r in results:
        per_target.setdefault(r["target"], Counter())[r["outcome"]] += 1
    return {
        "total": len(results),
        "outcomes": {o: overall.get(o, 0) for o in OUTCOME_ORDER},
        "targets": {t: {o: c.get(o, 0) for o in OUTCOME_ORDER} for t, c in per_target.items()},
        "profile_would_add": profile_would_add(results),
    }


def profile_would_add(results: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Per target without a profile: how many SKIPPED scenarios each profile would have judged (C3)."""
    out: dict[str, dict[str, int]] = {}
    for r in results:
        if r["outcome"] == Outcome.SKIPPED.value and r.get("profiles") and r.get("profile_skip") == "undeclared":
            counts = out.setdefault(r["target"], {})
            for profile in r["profiles"]:
                counts[profile] = counts.get(profile, 0) + 1
    return out


def build_document(results: list[dict[str, Any]], targets: list[dict[str, Any]], started: dt.datetime,
                   finished: dt.datetime, argv: list[str], strict: bool) -> dict[str, Any]:
    order = {t["label"]: i for i, t in enumerate(targets)}
    ordered = sorted(results, key=lambda r: (r["file"], r["line"], order.get(r["target"], 1_000_000)))
    return {
        "format_version": FORMAT_VERSION,
        "tool": {"name": "smtp-conformance", "version": __version__},
        "run": {
            "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round((finished - started).total_seconds(), 3),
            "argv": argv,
            "strict": strict,
        },
        "targets": targets,
        "results": ordered,
        "summary": summarize(ordered),
    }


def write_json(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, ensure_ascii=True) + "\n")
    tmp.replace(path)


def fails_run(outcome: str, strict: bool) -> bool:
    return outcome in ("fail", "error") or (strict and outcome == "non-strict")


def unwritable(path: Path) -> str | None:
    """Why a report cannot be written to `path` (checked before a run, so that a run never ends in a
    traceback after minutes of work), or None when it can."""
    if path.is_dir():
        return f"{path} is a folder, not a file"
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot create {path}: {parent} is a file, not a folder"
    if path.exists() and not os.access(path, os.W_OK):
        return f"cannot write {path}: permission denied"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {path}: {parent} is not writable"
    return None


# ----- results streamed to disk ------------------------------------------------------------------------
RUN_TRANSCRIPT_BUDGET = 4 * 1024 * 1024  # octets of memory the in-memory document's transcripts take in all
ENTRY_OVERHEAD = 256  # octets a transcript entry takes besides its text (its dict, time and strings)
SHORT_TRANSCRIPT = 4 * 1024  # characters a non-pass result keeps once the run's budget is used
LEFT_OUT = "[transcript left out of this report to bound its size: it is in the results JSON]"
# one list for every result whose transcript is left out (thousands in a large run); nothing changes it
_LEFT_OUT_TRANSCRIPT = [{"t": 0.0, "dir": "*", "data": LEFT_OUT}]


class Spool:
    """Results written to a JSON-lines file as they finish, so a run's memory does not grow with them.

    `add` writes the full entry and returns a slim copy for the reports that are built in memory (HTML,
    terminal, baselines): its transcript is kept while the run's budget lasts, then only the start of
    non-pass ones. `write_json` streams the results document back from the file with full entries."""

    def __init__(self, folder: Path | None = None) -> None:
        # deleted by the system when closed or when the process ends, however it ends
        # a 1 MiB buffer: entries of tens of KiB are written a few at a time, not one write(2) each
        self._file = tempfile.TemporaryFile(mode="w+b", buffering=1 << 20, dir=folder,  # noqa: SIM115
                                            prefix="smtpc-results-")
        self._where: dict[tuple[str, str], tuple[int, int]] = {}
        self._amended: dict[tuple[str, str], dict[str, Any]] = {}  # fields set after the entry was written
        self._lock = threading.Lock()  # entries come from the runner's thread, reads from pytest's
        self._end = 0  # where the next entry goes: kept here, since a seek or tell flushes the write buffer
        self._at_end = True
        self.transcript_memory = 0  # octets the kept transcripts take (RUN_TRANSCRIPT_BUDGET)

    @staticmethod
    def _key(entry: dict[str, Any]) -> tuple[str, str]:
        return str(entry.get("target")), str(entry.get("id"))

    def holds(self, entry: dict[str, Any]) -> bool:
        return self._key(entry) in self._where

    def amend(self, entry: dict[str, Any], changes: dict[str, Any]) -> None:
        """Fields set on an entry after it was written (its node id, …): the results JSON has them too."""
        key = self._key(entry)
        if key in self._where:
            self._amended.setdefault(key, {}).update(changes)

    def add(self, entry: dict[str, Any]) -> dict[str, Any]:
        line = (json.dumps(entry, ensure_ascii=True) + "\n").encode()
        with self._lock:
            if not self._at_end:
                self._file.seek(self._end)
                self._at_end = True
            self._where[self._key(entry)] = (self._end, len(line))
            self._file.write(line)
            self._end += len(line)
        slim = dict(entry)
        transcript = entry.get("transcript") or []
        # counted as memory, not as characters: a dict per entry weighs more than most entries' text
        left = RUN_TRANSCRIPT_BUDGET - self.transcript_memory
        fits = len(transcript) * ENTRY_OVERHEAD <= left  # once the budget is used up, not even counted
        if fits:
            size = sum(len(str(e.get("data", ""))) + ENTRY_OVERHEAD for e in transcript if isinstance(e, dict))
            fits = size <= left
        if fits:
            self.transcript_memory += size
        elif entry.get("outcome") in ("pass", "unsupported", "skipped", "info"):
            slim["transcript"] = _LEFT_OUT_TRANSCRIPT if transcript else []
        else:
            slim["transcript"] = _shortened(transcript, SHORT_TRANSCRIPT)
        return slim

    def full(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The entry as written (with its whole transcript), or the given one if it was never spooled."""
        key = self._key(entry)
        line = self._line(key)
        return entry if line is None else {**json.loads(line), **self._amended.get(key, {})}

    def _as_written(self, entry: dict[str, Any]) -> str | None:
        """The entry's JSON line as it is on disk, when nothing was amended since (most entries)."""
        key = self._key(entry)
        line = None if key in self._amended else self._line(key)
        return None if line is None else line.rstrip(b"\n").decode("ascii")  # ensure_ascii: ASCII

    def _line(self, key: tuple[str, str]) -> bytes | None:
        where = self._where.get(key)
        if where is None:
            return None
        with self._lock:
            self._at_end = False
            self._file.seek(where[0])
            return self._file.read(where[1])

    def write_json(self, document: dict[str, Any], path: Path) -> None:
        """The document with each result read back in full from the spool, one at a time."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        head = {k: v for k, v in document.items() if k != "results"}
        with tmp.open("w") as out:
            out.write("{\n")
            for key, value in head.items():
                if key == "summary":
                    continue
                out.write(f" {json.dumps(key)}: {_indented(value)},\n")
            out.write(' "results": [')
            for n, entry in enumerate(document.get("results", [])):
                line = self._as_written(entry)
                if line is None:
                    line = json.dumps(self.full(entry), ensure_ascii=True)
                out.write(("," if n else "") + "\n  " + line)
            out.write("\n ]")
            if "summary" in head:
                out.write(f',\n "summary": {_indented(head["summary"])}')
            out.write("\n}\n")
        tmp.replace(path)

    def close(self) -> None:
        self._file.close()


def _indented(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=True).replace("\n", "\n ")


def _shortened(transcript: list[Any], limit: int) -> list[Any]:
    out: list[Any] = []
    left = limit
    for entry in transcript:
        data = str(entry.get("data", "")) if isinstance(entry, dict) else ""
        if len(data) > left:
            out.append({**entry, "data": data[:left]})
            out.append({"t": entry.get("t", 0.0), "dir": "*", "data": LEFT_OUT})
            break
        left -= len(data)
        out.append(entry)
    return out
