"""The one pytest run (a subprocess) that plays the planned scenarios against the whole class."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .isolation import TOKEN_VAR, UIDS_VAR, Isolation
from .rubric import DEFAULT_STARTUP, DEFAULT_TIME_LIMIT, Plan, Student


@dataclass
class RunOutcome:
    document: dict[str, Any] | None
    raw: bytes  # the results JSON as the suite wrote it (copied to --out as results.json)
    complete: bool
    note: str
    duration_s: float
    swept: int


def generated_targets(plan: Plan, students: list[Student], iso: Isolation, concurrency: int) -> dict[str, Any]:
    entries = []
    for s in students:
        entry = dict(s.entry)
        entry["label"] = s.label
        entry.setdefault("time_limit", plan.rubric.time_limit)
        entry.setdefault("startup_timeout", plan.rubric.startup_timeout)
        entry.setdefault("concurrency", concurrency)
        if s.kind == "command":
            entry["command"] = iso.wrap(s, float(entry["time_limit"]), float(entry["startup_timeout"]))
        entries.append(entry)
    return {"targets": entries}


def run_deadline(plan: Plan, targets: list[dict[str, Any]], timeout: float) -> float:
    """A generous bound on the whole run: it only guards against a stuck engine, never cuts a fair run."""
    local = [t for t in targets if "address" not in t]
    workers = min(32, (os.cpu_count() or 1) + 4)  # asyncio.to_thread's pool starts targets
    batches = math.ceil(len(local) / workers) if local else 0
    startup = max((float(t["startup_timeout"]) for t in targets), default=DEFAULT_STARTUP)
    longest = max((float(t["time_limit"]) for t in targets), default=DEFAULT_TIME_LIMIT)
    scenario_budget = max([timeout, *[s.timeout or 0 for s in plan.scenarios.values()]])
    return batches * (startup + 4 * timeout + 5) + longest + scenario_budget + 6 * len(targets) + 120


def run_class(plan: Plan, students: list[Student], iso: Isolation, private: Path, *, timeout: float,
              concurrency: int, verbose: bool = False, quiet: bool = False) -> RunOutcome:
    """One pytest run for the whole class; returns its results document (None if it produced none)."""
    import yaml

    targets = generated_targets(plan, students, iso, concurrency)
    targets_file = private / "targets.yaml"
    targets_file.write_text(yaml.safe_dump(targets, sort_keys=False, allow_unicode=True))
    select_file = private / "select.json"
    select_file.write_text(json.dumps(sorted(plan.scenarios)))
    ini = private / "pytest.ini"
    ini.write_text("[pytest]\n")
    results = private / "results.json"
    log_path = private / "pytest.log"
    # Each student's own `concurrency` bounds its dialogues; the run-wide limit is their sum, so that every
    # student progresses at once (each dialogue is a coroutine; a slow student cannot hold the others back).
    total_slots = sum(int(t.get("concurrency") or concurrency) for t in targets["targets"])
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "conformance.grading.pytest_plugin",
           "--noconftest", "-c", str(ini), "--rootdir", str(Path.cwd()), "-q", "--tb=no",
           "-o", "console_output_style=classic",
           *plan.files, "--smtp-targets", str(targets_file), "--smtp-json", str(results),
           "--smtp-timeout", f"{timeout:g}", "--smtp-concurrency", str(max(1, total_slots)),
           "--smtp-grading-select", str(select_file), "--smtp-transcripts", "non-pass",
           "--smtp-progress", "off" if quiet else "lines", "--smtp-keep-unusable"]
    if verbose:
        print("grading run: " + shlex.join(cmd), file=sys.stderr)
    # PYTEST_ADDOPTS could bring -n (xdist): every worker would start its own copy of every student
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update({TOKEN_VAR: iso.token, UIDS_VAR: ",".join(str(u) for u in iso.uids.values())})
    deadline = run_deadline(plan, targets["targets"], timeout)
    started = time.monotonic()
    complete, note = True, ""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            _wait_showing_progress(proc, deadline, log_path)
        except subprocess.TimeoutExpired:
            complete, note = False, f"the suite run did not finish within {deadline:.0f} s and was stopped"
            _stop_group(proc)
        except BaseException:
            _stop_group(proc)
            iso.sweep()
            raise
    swept = iso.sweep()
    duration = time.monotonic() - started
    document, raw = None, b""
    if results.exists():
        try:
            raw = results.read_bytes()
            document = json.loads(raw)
        except (OSError, ValueError) as exc:
            complete, note = False, f"unreadable results: {exc}"
    if document is None:
        complete = False
        tail = log_path.read_text(errors="replace")[-1500:] if log_path.exists() else ""
        note = note or f"the suite run (exit status {proc.returncode}) wrote no results: {tail.strip()}"
    elif proc.returncode not in (0, 1) and complete:
        complete, note = False, f"the suite run ended with status {proc.returncode}"
    if verbose:
        print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
    return RunOutcome(document, raw, complete, note, duration, swept)


def _wait_showing_progress(proc: subprocess.Popen[bytes], deadline: float, log_path: Path) -> None:
    """Wait for the run; meanwhile pass on its per-student progress lines (one per student every few seconds)."""
    ends = time.monotonic() + deadline
    shown = 0
    while True:
        try:
            proc.wait(timeout=max(0.0, min(1.0, ends - time.monotonic())))
            done = True
        except subprocess.TimeoutExpired:
            if time.monotonic() >= ends:
                raise
            done = False
        with contextlib.suppress(OSError), open(log_path, "rb") as log:
            log.seek(shown)
            text = log.read()
            complete = text[:text.rfind(b"\n") + 1]
            shown += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            if line.startswith("progress: "):
                print(line.replace("progress: ", "progress: student ", 1), file=sys.stderr, flush=True)
        if done:
            return


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the pytest process group (the plugin then stops its targets), SIGKILL after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
