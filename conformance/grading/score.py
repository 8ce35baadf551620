"""Scoring: points per category and student from the run's results, and grades.json / grades.csv."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from ..model import Cause, Outcome
from ..results import result_entry
from .rubric import OUTCOMES, Plan, Student

GRADES_FORMAT = 1

def _synthetic(scenario: Any, label: str, message: str) -> dict[str, Any]:
    return result_entry(scenario, label, Outcome.ERROR, message, cause=Cause.HARNESS)


def score_students(plan: Plan, students: list[Student], document: dict[str, Any] | None,
                   missing_note: str) -> list[dict[str, Any]]:
    """One record per student: points per category, total, and every scored scenario's outcome and credit."""
    rubric = plan.rubric
    by_target: dict[str, dict[str, dict[str, Any]]] = {}
    identities: dict[str, dict[str, Any]] = {}
    if document is not None:
        for r in document.get("results", []):
            by_target.setdefault(r["target"], {})[r["id"]] = r
        identities = {t["label"]: t for t in document.get("targets", [])}
    records = []
    for student in students:
        results = by_target.get(student.label, {})
        identity = identities.get(student.label, {})
        cats: dict[str, dict[str, Any]] = {}
        scenarios: list[dict[str, Any]] = []
        for cat in rubric.categories:
            earned = possible = 0.0
            counts = dict.fromkeys(OUTCOMES, 0)
            excluded = 0
            for sid in plan.members[cat.name]:
                scenario = plan.scenarios[sid]
                r = results.get(sid) or _synthetic(scenario, student.label, missing_note or "no result for this "
                                                   "scenario")
                outcome = r["outcome"] if r["outcome"] in OUTCOMES else "error"
                scored = outcome
                if rubric.no_answer == "fail" and outcome in ("info", "non-strict") and unanswered(r):
                    scored = "fail"
                credit = cat.credit.value(scored, scenario.level.value)
                counts[scored] += 1
                if credit is None:
                    excluded += 1
                else:
                    earned += credit
                    possible += 1
                scenarios.append({"id": sid, "title": scenario.title, "category": cat.name,
                                  "hidden": sid in plan.hidden, "level": scenario.level.value, "outcome": outcome,
                                  "scored_as": scored, "credit": credit, "message": r.get("message", ""), "result": r})
            cats[cat.name] = {"earned": earned, "possible": possible, "excluded": excluded,
                              "fraction": (earned / possible) if possible else None, "outcomes": counts}
        applicable = sum(c.weight for c in rubric.categories if cats[c.name]["fraction"] is not None)
        total = 0.0
        for cat in rubric.categories:
            entry = cats[cat.name]
            if entry["fraction"] is None or not applicable:
                entry["points"] = entry["max"] = None
                continue
            entry["max"] = rubric.total * cat.weight / applicable
            entry["points"] = entry["max"] * entry["fraction"]
            total += entry["points"]
        hidden = [s for s in scenarios if s["hidden"] and s["credit"] is not None]
        not_run = sum(1 for s in scenarios if s["result"].get("cause") == Cause.TIME_LIMIT)
        errors = sum(1 for s in scenarios if s["outcome"] == "error")
        records.append({
            "label": student.label, "kind": student.kind, "spec": student.spec, "line": student.line,
            "total": total, "max": rubric.total if applicable else 0.0,
            "categories": cats, "scenarios": scenarios,
            "hidden": {"checks": len(hidden), "passed": sum(1 for s in hidden if s["credit"] == 1.0)},
            "not_run": not_run, "errors": errors, "identity": identity,
            "status": _status(identity, not_run, errors, len(scenarios), missing_note if not results else "",
                              student.spec),
        })
    records.sort(key=lambda r: (-round(r["total"], 6), r["label"]))
    for rank, record in enumerate(records, 1):
        record["rank"] = rank
    return records


def unanswered(result: Mapping[str, Any]) -> bool:
    """The check ended because the server did not answer in time (not because of what it answered)."""
    return result.get("cause") in (Cause.TIMEOUT, Cause.SCENARIO_TIMEOUT)


def _status(identity: Mapping[str, Any], not_run: int, errors: int, count: int, missing: str,
            command: str = "") -> str:
    if missing:
        return missing
    problem = str(identity.get("error") or "")
    wrapped = str(identity.get("spec") or "")
    if problem and wrapped and command:
        # the run saw the command inside the grader's isolation wrapper (prlimit … setpriv …): show the student's
        for form in (repr(wrapped), repr(wrapped.removeprefix("cmd:")), wrapped, wrapped.removeprefix("cmd:")):
            problem = problem.replace(form, repr(command))
    if problem:
        return problem[:300]
    parts = []
    if not_run:
        parts.append(f"time limit reached: {not_run} of {count} checks not run")
    if errors:
        parts.append(f"{errors} checks could not run (server not reachable)")
    return "; ".join(parts) or "ok"


def _r2(value: float | None) -> float | None:
    return None if value is None else round(value + 0.0, 2)


def grades_document(plan: Plan, records: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    from .. import __version__

    rubric = plan.rubric
    return {
        "format_version": GRADES_FORMAT,
        "tool": {"name": "smtp-conformance", "version": __version__},
        "rubric": {
            "file": rubric.file, "title": rubric.title, "total": rubric.total, "time_limit": rubric.time_limit,
            "no_answer": rubric.no_answer, "credit": rubric.credit.as_json(),
            "categories": [{"name": c.name, "weight": c.weight, "max_points": _r2(rubric.nominal_max(c)),
                            "credit": c.credit.as_json(), "scenarios": plan.members[c.name]}
                           for c in rubric.categories],
            "hidden": sorted(plan.hidden),
        },
        "run": run,
        "students": [{
            "label": r["label"], "rank": r["rank"], "kind": r["kind"], "spec": r["spec"],
            "total": _r2(r["total"]), "max": _r2(r["max"]), "status": r["status"],
            "categories": {name: {"points": _r2(c["points"]), "max": _r2(c["max"]),
                                  "fraction": None if c["fraction"] is None else round(c["fraction"], 4),
                                  "earned": round(c["earned"], 4), "possible": c["possible"],
                                  "excluded": c["excluded"], "outcomes": c["outcomes"]}
                           for name, c in r["categories"].items()},
            "hidden": r["hidden"], "not_run": r["not_run"], "errors": r["errors"],
            "banner": r["identity"].get("banner", ""), "error": r["identity"].get("error"),
            "scenarios": [{k: s[k] for k in ("id", "title", "category", "hidden", "level", "outcome", "scored_as",
                                             "credit", "message")} for s in r["scenarios"]],
        } for r in records],
    }


def grades_csv(plan: Plan, records: list[dict[str, Any]]) -> str:
    """student, one column per category (points; empty when not applicable), total — sorted by student."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = [c.name for c in plan.rubric.categories]
    writer.writerow(["student", *names, "total"])
    for r in sorted(records, key=lambda r: r["label"]):
        cells = [("" if r["categories"][n]["points"] is None else f"{r['categories'][n]['points']:.2f}") for n in names]
        writer.writerow([r["label"], *cells, f"{r['total']:.2f}"])
    return buf.getvalue()
