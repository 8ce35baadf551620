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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVERS = REPO / "scripts" / "servers"
SCENARIOS = REPO / "scenarios"
REAL_SERVERS = ["postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-server", "maildev"]
SINGLE_INSTANCE = {"opensmtpd"}


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
def real_server(name: str) -> Iterator[RealServer]:
    """Start scripts/servers/NAME on a free port for the duration of the block."""
    script = SERVERS / name
    check = subprocess.run([str(script), "check"], capture_output=True, text=True, timeout=60)
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
                                 text=True, timeout=90)
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
            subprocess.run([str(script), "stop", str(statedir)], capture_output=True, timeout=60)
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


def run_suite(*args: str, paths: list[str] | None = None, timeout: float = 600, tmp: Path | None = None) -> SuiteRun:
    """Run the conformance suite as a user would (pytest in a subprocess) and read its JSON results."""
    workdir = Path(tempfile.mkdtemp(prefix="smtpc-run-")) if tmp is None else tmp
    out = workdir / f"results-{os.getpid()}-{free_port()}.json"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *(paths or [str(SCENARIOS)]),
           "--smtp-json", str(out), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        document = json.loads(out.read_text()) if out.exists() else None
    finally:
        if tmp is None:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            out.unlink(missing_ok=True)
    return SuiteRun(proc.returncode, proc.stdout, proc.stderr, document)
