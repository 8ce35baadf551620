"""The grading pages (class.html, students/<label>.html) and the files written into --out."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

from ..failure import Failure
from ..report.common import environment
from .explain import explain, reproduce_commands
from .rubric import OUTCOMES, Plan, Student
from .score import grades_csv, grades_document


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _transcript_lines(failure: Failure, limit: int = 300) -> list[dict[str, str]]:
    rows, left_off = failure.rows(limit, max_chars=2000)
    out = [{"t": r.t, "dir": r.label or "* ", "cls": r.side, "data": r.data} for r in rows]
    if left_off:
        out.append({"t": "", "dir": "", "cls": "e", "data": f"… {left_off} more entries"})
    return out


def student_context(plan: Plan, record: dict[str, Any], student: Student, run: Mapping[str, Any],
                    timeout: float) -> dict[str, Any]:
    """Everything a student's page shows. Hidden scenarios contribute counts only: no id, title or detail."""
    rubric = plan.rubric
    identity = record["identity"]
    time_limit = float(student.entry.get("time_limit", rubric.time_limit))
    categories = []
    for cat in rubric.categories:
        c = record["categories"][cat.name]
        visible, failures = [], []
        hidden_total = hidden_passed = 0
        for s in record["scenarios"]:
            if s["category"] != cat.name:
                continue
            if s["hidden"]:
                if s["credit"] is not None:
                    hidden_total += 1
                    hidden_passed += s["credit"] == 1.0
                continue
            r = s["result"]
            row = {"id": s["id"], "title": s["title"], "outcome": s["outcome"], "scored_as": s["scored_as"],
                   "level": s["level"],
                   "credit": "excluded" if s["credit"] is None else f"{s['credit']:.2f}",
                   "anchor": "f-" + re.sub(r"[^A-Za-z0-9_-]", "_", s["id"]),
                   "failed": s["credit"] is not None and s["credit"] < 1.0}
            visible.append(row)
            if row["failed"]:
                failure = Failure.of(r)
                failures.append({**row, "compact": not r.get("transcript"), "rfc": r.get("rfc", ""),
                                 "section": r.get("section", ""),
                                 "quote": r.get("quote", ""), "message": r.get("message", ""),
                                 "explanation": explain(r, timeout, time_limit)
                                 + (" Not answering at all is not a behaviour the RFC leaves open, so this is "
                                    "scored as a failure." if s["scored_as"] != s["outcome"] else ""),
                                 "expected": failure.expected, "actual": failure.actual,
                                 "sent": failure.wire_lines("C"), "received": failure.wire_lines("S"),
                                 "transcript": _transcript_lines(failure),
                                 "reproduce": reproduce_commands(student, r) if r.get("file") else []})
        categories.append({"name": cat.name, "description": cat.description, "points": _fmt(c["points"]),
                           "max": _fmt(c["max"]), "visible": visible, "failures": failures,
                           "hidden_total": hidden_total, "hidden_passed": hidden_passed,
                           "applicable": c["points"] is not None})
    logs = identity.get("logs") or {}
    status = (identity.get("details") or {}).get("exit_status")
    if status is None:
        ended = ""
    elif status < 0:
        ended = f"stopped by the grader at the end of the run (signal {-status})"
    else:
        ended = f"exited with status {status}" + (": it crashed or quit by itself" if status > 0 else "")
    return {
        "ended": ended,
        "title": rubric.title, "label": record["label"], "total": _fmt(record["total"]), "max": _fmt(record["max"]),
        "categories": categories, "hidden": record["hidden"], "status": record["status"],
        "spec": student.spec, "banner": identity.get("banner", ""), "keywords": identity.get("ehlo_keywords", []),
        "error": identity.get("error") or "", "time_limit": f"{time_limit:g}", "timeout": f"{timeout:g}",
        "logs": [(k, str(v)[-8000:]) for k, v in logs.items() if v], "run": run,
    }


def class_context(plan: Plan, records: list[dict[str, Any]], run: Mapping[str, Any]) -> dict[str, Any]:
    rubric = plan.rubric
    rows = []
    for r in records:
        rows.append({"rank": r["rank"], "label": r["label"], "href": "students/" + url_quote(r["label"]) + ".html",
                     "cells": [_fmt(r["categories"][c.name]["points"]) for c in rubric.categories],
                     "total": _fmt(r["total"]), "status": r["status"], "ok": r["status"] == "ok"})
    checks = []
    for sid, scenario in plan.scenarios.items():
        outcomes = [next(s for s in r["scenarios"] if s["id"] == sid) for r in records]
        full = sum(1 for s in outcomes if s["credit"] == 1.0)
        checks.append({"id": sid, "title": scenario.title, "category": plan.category_of[sid],
                       "hidden": sid in plan.hidden, "level": scenario.level.value, "full": full,
                       "of": len(outcomes),
                       "counts": ", ".join(f"{o} {n}" for o in OUTCOMES
                                           if (n := sum(1 for s in outcomes if s["outcome"] == o)))})
    checks.sort(key=lambda c: (c["full"], c["id"]))
    return {"title": rubric.title, "total": _fmt(rubric.total),
            "categories": [{"name": c.name, "max": _fmt(rubric.nominal_max(c)), "n": len(plan.members[c.name])}
                           for c in rubric.categories],
            "rows": rows, "checks": checks, "run": run}


def write_reports(out: Path, plan: Plan, students: list[Student], records: list[dict[str, Any]],
                  run: dict[str, Any], results_json: bytes, timeout: float) -> list[Path]:
    env = environment()
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
    reports = out / "students"
    if not reports.exists():
        reports.mkdir(mode=0o700)
    by_label = {s.label: s for s in students}
    written: list[Path] = []

    def write(path: Path, text: str | bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        tmp.replace(path)
        written.append(path)

    current = set()
    student_template = env.get_template("student.html.j2")
    for record in records:
        page = reports / f"{record['label']}.html"
        current.add(page.name)
        write(page, student_template.render(**student_context(plan, record, by_label[record["label"]], run, timeout)))
    for stale in reports.glob("*.html"):  # students no longer in the class
        if stale.name not in current:
            stale.unlink()
    write(out / "class.html", env.get_template("class.html.j2").render(**class_context(plan, records, run)))
    write(out / "grades.csv", grades_csv(plan, records))
    write(out / "grades.json", json.dumps(grades_document(plan, records, run), indent=1) + "\n")
    if results_json:
        write(out / "results.json", results_json)
    return written
