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
                 dialogue: DialogueResult | None = None) -> dict[str, Any]:
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
        "profiles": list(scenario.profiles),
        "profile_skip": None,
        "tags": list(scenario.tags),
        "file": scenario.file,
        "line": scenario.line,
        "nodeid": "",
        "reproduce": "",
        "duration_s": 0.0,
        "message": message,
        "cause": None,
        "branch": None,
        "step": None,
        "codes": [],
        "decisive_code": None,
        "connection": "open",
        "findings": [],
        "transcript": [],
    }
    if dialogue is not None:
        entry.update(
            duration_s=dialogue.duration_s,
            cause=dialogue.cause,
            branch="; ".join(dialogue.branch) or None,
            step=dialogue.decisive.as_json() if dialogue.decisive else None,
            codes=list(dialogue.codes),
            decisive_code=dialogue.decisive_code,
            connection=dialogue.connection,
            findings=list(dialogue.findings),
            transcript=dialogue.transcript.as_json(),
        )
    return entry


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
