"""Result entries and the results document (docs/results-format.md): the layer reports read."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

from . import __version__
from .dialogue import DialogueResult
from .model import Outcome, Scenario

FORMAT_VERSION = 1
OUTCOME_ORDER = [o.value for o in Outcome]


def result_entry(scenario: Scenario, target: str, outcome: Outcome, message: str,
                 dialogue: DialogueResult | None = None, missing: list[str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": scenario.id,
        "title": scenario.title,
        "target": target,
        "outcome": outcome.value,
        "level": scenario.level.value,
        "rfc": scenario.rfc,
        "section": scenario.section,
        "quote": scenario.quote,
        "requirements": list(scenario.requirements),
        "tags": list(scenario.tags),
        "file": scenario.file,
        "line": scenario.line,
        "nodeid": "",
        "reproduce": "",
        "duration_s": 0.0,
        "message": message,
        "branch": None,
        "step": None,
        "codes": [],
        "decisive_code": None,
        "connection": "open",
        "findings": [],
        "transcript": [],
    }
    if missing:  # UNSUPPORTED because the target was not given these parameters (mailbox, credentials …)
        entry["missing"] = list(missing)
    if dialogue is not None:
        entry.update(
            duration_s=dialogue.duration_s,
            branch="; ".join(dialogue.branch) or None,
            step=dialogue.decisive.as_json() if dialogue.decisive else None,
            codes=list(dialogue.codes),
            decisive_code=dialogue.decisive_code,
            connection=dialogue.connection,
            findings=list(dialogue.findings),
            transcript=dialogue.transcript.as_json(),
        )
    return entry


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
    }


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
