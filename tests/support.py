"""Shared helpers for the project's own tests: real servers, faulty servers, running the suite."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.loader import Loader, load_requirement_ids

REPO = Path(__file__).resolve().parents[1]
SERVERS = REPO / "scripts" / "servers"
SCENARIOS = REPO / "scenarios"
REAL_SERVERS = ["postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-server", "maildev", "haraka"]
SINGLE_INSTANCE = {"opensmtpd"}
# A process's own peak RSS in KiB, as a Python expression to run in it: VmHWM is the high-water mark of its
# memory. getrusage's ru_maxrss is not: Linux carries the parent's RSS at fork over the exec, so a child of
# a 250 MiB pytest worker "peaks" at 250 MiB whatever it does.
PEAK_RSS_KIB = "int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0])"


def missing(what: str) -> None:
    """A server the test needs is not here: skip, but fail under CI=true (DEVELOPERS.md)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: missing servers are failures)")
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RealServer:
    name: str
    port: int
    statedir: Path
    maildir: Path | None
    api: str | None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.contextmanager
def real_server(name: str, env: dict[str, str] | None = None) -> Iterator[RealServer]:
    """Start scripts/servers/NAME on a free port for the duration of the block; env: extra variables for its
    start script (e.g. SMTP_SERVERS_ANY_LOCAL_PART=1, POSTFIX_EXTRA_MAIN_CF)."""
    script = SERVERS / name
    environ = {**os.environ, **(env or {})}
    check = subprocess.run([str(script), "check"], capture_output=True, text=True, timeout=60, env=environ)
    if check.returncode != 0:
        missing(f"{name} is not installed (scripts/servers/install): {check.stderr.strip()}")
    lock_file = None
    if name in SINGLE_INSTANCE:
        lock_file = open(f"/tmp/smtp-servers-{name}.lock", "w")  # noqa: SIM115
        fcntl.flock(lock_file, fcntl.LOCK_EX)
    statedir = Path(tempfile.mkdtemp(prefix=f"smtpc-{name}-", dir="/tmp"))
    statedir.chmod(0o755)
    try:
        port = free_port()
        if name == "maildev":
            while True:  # maildev's API takes PORT+1
                with contextlib.suppress(OSError), socket.socket() as s:
                    s.bind(("127.0.0.1", port + 1))
                    break
                port = free_port()
        started = subprocess.run([str(script), "start", str(port), str(statedir)], capture_output=True,
                                 text=True, timeout=90, env=environ)
        if started.returncode != 0:
            pytest.fail(f"{name} did not start: {started.stderr[-2000:]}")
        maildir = api = None
        for line in started.stdout.splitlines():
            key, _, value = line.partition("=")
            if key == "maildir":
                maildir = Path(value)
            elif key == "api":
                api = value
        try:
            yield RealServer(name, port, statedir, maildir, api)
        finally:
            subprocess.run([str(script), "stop", str(statedir)], capture_output=True, timeout=60, env=environ)
    finally:
        shutil.rmtree(statedir, ignore_errors=True)
        if lock_file is not None:
            lock_file.close()


@dataclass
class SuiteRun:
    exit_code: int
    stdout: str
    stderr: str
    document: dict[str, Any] | None
    peak_rss_kib: int | None = None  # the suite process's own peak, when run_suite was asked to measure it

    def outcomes(self, target: str | None = None) -> dict[str, str]:
        """scenario id -> outcome (for one target, or the only one)."""
        assert self.document is not None, f"no results written; stdout:\n{self.stdout[-3000:]}\n{self.stderr[-2000:]}"
        return {r["id"]: r["outcome"] for r in self.document["results"] if target is None or r["target"] == target}

    def result(self, scenario_id: str, target: str | None = None) -> dict[str, Any]:
        assert self.document is not None
        for r in self.document["results"]:
            if r["id"] == scenario_id and (target is None or r["target"] == target):
                return r
        raise AssertionError(f"no result for {scenario_id}")


def run_suite(*args: str, paths: list[str] | None = None, timeout: float = 600, tmp: Path | None = None,
              measure_rss: bool = False) -> SuiteRun:
    """Run the conformance suite as a user would (pytest in a subprocess) and read its JSON results; with
    measure_rss, the subprocess also reports its own peak RSS (SuiteRun.peak_rss_kib)."""
    workdir = Path(tempfile.mkdtemp(prefix="smtpc-run-")) if tmp is None else tmp
    out = workdir / f"results-{os.getpid()}-{free_port()}.json"
    pytest_cmd = ["-m", "pytest"] if not measure_rss else [
        "-c", "import atexit, sys, pytest\n"
              f"atexit.register(lambda: print('PEAK_RSS_KIB', {PEAK_RSS_KIB}, file=sys.stderr))\n"
              "sys.exit(pytest.console_main())\n"]
    cmd = [sys.executable, *pytest_cmd, "-p", "no:cacheprovider", "-q", *(paths or [str(SCENARIOS)]),
           "--smtp-json", str(out), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        document = json.loads(out.read_text()) if out.exists() else None
    finally:
        if tmp is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
    peak = next((int(line.split()[1]) for line in reversed(proc.stderr.splitlines())
                 if line.startswith("PEAK_RSS_KIB ")), None)
    return SuiteRun(proc.returncode, proc.stdout, proc.stderr, document, peak)


# ----- one suite run over selected (scenario, target) pairs, judged against the expected outcomes -----
def catalog(files: Iterable[str | Path]) -> dict[str, str]:
    """scenario id -> its file (as a node id names it) for these scenario files; they must load cleanly."""
    loaded = Loader(load_requirement_ids()).load_paths([REPO / f for f in files])
    assert not loaded.problems, "\n".join(str(p) for p in loaded.problems)
    return {s.id: s.file for s in loaded.scenarios}


def targets_file(directory: Path, targets: dict[str, dict[str, str]]) -> str:
    """A targets file (label -> its entry: address, mailbox, ...) in directory; its name, for --smtp-targets."""
    path = directory / f"targets-{len(list(directory.glob('targets-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"targets": [{"label": label, **spec} for label, spec in targets.items()]}))
    return str(path)


def run_selected(targets: dict[str, dict[str, str]], wanted: dict[tuple[str, str], str], files: dict[str, str],
                 tmp: Path, *args: str, concurrency: int, timeout: float) -> SuiteRun:
    """One suite run (a targets file in tmp) of exactly the (scenario id, target label) pairs of `wanted`;
    files: scenario id -> its file."""
    nodes = sorted({f"{files[sid]}::{sid}[{label}]" for sid, label in wanted})
    return run_suite("--smtp-targets", targets_file(tmp, targets), "--smtp-concurrency", str(concurrency), *args,
                     paths=nodes, timeout=timeout, tmp=tmp)


def mismatches(run: SuiteRun, wanted: dict[tuple[str, str], str]) -> list[str]:
    """One line per (scenario id, target label) of `wanted` whose outcome is not the expected one."""
    assert run.document is not None, run.stdout[-3000:] + run.stderr[-2000:]
    got = {(r["id"], r["target"]): (r["outcome"], r.get("message", "")) for r in run.document["results"]}
    return [f"{label:26} {sid:58} expected {outcome:11} got {got.get((sid, label), ('missing', ''))}"
            for (sid, label), outcome in sorted(wanted.items(), key=lambda kv: (kv[0][1], kv[0][0]))
            if got.get((sid, label), ("missing",))[0] != outcome]
