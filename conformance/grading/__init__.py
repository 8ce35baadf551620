"""Grading a class: every student's SMTP server against a rubric, one suite run for the whole class.

`smtp-conformance grade --rubric rubric.yaml --targets students.yaml` (docs/grading.md):

1. the rubric (conformance/schema/rubric.schema.json) and the students file (a targets file) are validated
   with line numbers; the scenarios the rubric's categories select are planned (`rubric`);
2. one pytest run (a subprocess, `run`) plays those scenarios against all students at once, with a generated
   targets file: per-student time limit and concurrency, and — when we are root — every command wrapped to
   run under its own unprivileged uid with resource limits (`isolation`); `pytest_plugin` is loaded by it;
3. after the run, every process a student left behind is killed (by uid, and by a run token in the
   environment), and only then are the grades computed (`score`, `explain`) and the reports written into
   `--out` (`report`): class.html, grades.csv, grades.json, students/<label>.html, results.json.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..loader import Loader, default_scenario_paths, load_requirement_ids
from .isolation import Isolation, IsolationError
from .reach import make_reachable
from .report import _fmt, write_reports
from .rubric import Plan, Student, load_rubric, load_students, make_plan
from .run import run_class
from .score import score_students

__all__ = ["Student", "grade", "load_rubric", "load_students", "make_plan", "score_students"]


def grade(rubric_path: Path, students_path: Path, out: Path, *, scenarios: list[str] | None = None,
          concurrency: int = 4, timeout: float = 10.0, isolation: str = "auto", uid_base: int | None = None,
          verbose: bool = False, quiet: bool = False) -> int:
    """`smtp-conformance grade`: 0 grades written, 1 written but the run was incomplete, 2 configuration errors."""
    problems: list[str] = []
    if concurrency < 1:
        problems.append("--concurrency: must be at least 1")
    if timeout <= 0:
        problems.append("--timeout: must be positive")
    rubric, rubric_problems = load_rubric(rubric_path)
    problems += [str(p) for p in rubric_problems]
    students, student_problems = load_students(students_path)
    problems += [str(p) for p in student_problems]
    problems += _missing_folders(students)
    if out.exists() and not out.is_dir():
        problems.append(f"--out {out}: exists and is not a folder")
    if rubric is None or problems:
        return _usage(problems)
    if scenarios:
        paths = [Path(p) for p in scenarios]
    elif rubric.scenario_paths:
        paths = rubric.scenario_paths
    else:
        paths = default_scenario_paths()
    for p in paths:
        if not p.exists():
            problems.append(f"{p}: no such scenario file or folder")
    if problems:
        return _usage(problems)
    catalog = Loader(load_requirement_ids()).load_paths(paths)
    problems += [str(p) for p in catalog.problems]
    plan, plan_problems, warnings = make_plan(rubric, catalog.scenarios)
    problems += [str(p) for p in plan_problems]
    if problems:
        return _usage(problems)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        iso, note = Isolation.create(isolation, students, uid_base)
    except IsolationError as exc:
        return _usage([str(exc)])
    if note:
        print(f"note: {note}", file=sys.stderr)
    copies, unreachable = (make_reachable(students, iso.uids, iso._drop, Path.cwd()) if iso.mode == "uid"
                           else (None, []))
    if unreachable:
        iso.cleanup()
        _remove(copies)
        return _usage(unreachable)
    started = dt.datetime.now(dt.UTC)
    private = Path(tempfile.mkdtemp(prefix="smtpc-grade-"))  # 0700: students cannot read what runs here
    try:
        outcome = run_class(plan, students, iso, private, timeout=timeout, concurrency=concurrency, verbose=verbose,
                            quiet=quiet)
    finally:
        iso.sweep()
        iso.cleanup()
        shutil.rmtree(private, ignore_errors=True)
        _remove(copies)
    finished = dt.datetime.now(dt.UTC)
    run = {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "finished": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "duration_s": round(outcome.duration_s, 3), "complete": outcome.complete, "note": outcome.note,
           "isolation": iso.describe(), "timeout": timeout, "concurrency": concurrency,
           "scenario_paths": [str(p) for p in paths], "processes_killed_after_run": outcome.swept,
           "students": len(students), "scenarios": len(plan.scenarios)}
    records = score_students(plan, students, outcome.document, "" if outcome.complete else outcome.note)
    written = write_reports(out, plan, students, records, run, outcome.raw, timeout)
    _print_summary(plan, records)
    if not outcome.complete:
        print(f"warning: {outcome.note}", file=sys.stderr)
    print(f"graded {len(records)} students on {len(plan.scenarios)} scenarios in {outcome.duration_s:.1f} s; "
          f"reports in {out}/ ({', '.join(p.name for p in written if p.parent == out)}, students/)")
    return 0 if outcome.complete else 1


def _remove(copies: Path | None) -> None:
    """Remove the read-only copies of student folders (their files and folders are read-only)."""
    if copies is None:
        return
    for root, dirs, _ in os.walk(copies):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), 0o755)
    copies.chmod(0o755)
    shutil.rmtree(copies, ignore_errors=True)


def _missing_folders(students: list[Student]) -> list[str]:
    """A student whose folder does not exist is named before anything runs (not graded 0.00)."""
    return [f"student {s.label}: folder {s.entry['workdir']} does not exist"
            for s in students if s.entry.get("workdir") and not Path(s.entry["workdir"]).is_dir()]


def _usage(problems: list[str]) -> int:
    for line in problems:
        print(line, file=sys.stderr)
    return 2


def _print_summary(plan: Plan, records: list[dict[str, Any]]) -> None:
    names = [c.name for c in plan.rubric.categories]
    width = max([len("student"), *(len(r["label"]) for r in records)])
    print(f"{'student':<{width}}  " + "  ".join(f"{n[:12]:>12}" for n in names) + f"  {'total':>8}  status")
    for r in records:
        cells = "  ".join(f"{_fmt(r['categories'][n]['points']):>12}" for n in names)
        print(f"{r['label']:<{width}}  {cells}  {r['total']:>8.2f}  {r['status'][:300]}")
