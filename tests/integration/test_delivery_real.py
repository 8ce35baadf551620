"""Delivery inspection against real stores: Postfix's Maildir, maildev's API, Dovecot over IMAP and POP3.

The same scenario — a message with dot-stuffed lines, then a `delivered` check of its stored form — passes
against servers that unstuff, and FAILs against one that does not (tests/servers/faulty.py no-unstuff).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO, SERVERS, free_port, missing, real_server, run_suite

SCENARIO = [str(REPO / "tests" / "corpus" / "engine" / "scenarios" / "delivery.yaml")]
ID = "engine-delivery-dots"


@contextlib.contextmanager
def dovecot(maildir: Path) -> Iterator[dict[str, str]]:
    script = SERVERS / "dovecot"
    if subprocess.run([str(script), "check"], capture_output=True).returncode != 0:
        missing("dovecot is not installed (scripts/servers/install dovecot)")
    state = Path(tempfile.mkdtemp(prefix="smtpc-dovecot-", dir="/tmp"))
    state.chmod(0o755)
    # Dovecot binds without SO_REUSEADDR: a port that is the local end of some client connection (the
    # ephemeral range is busy during tests) cannot be listened on, so try another port then.
    for _ in range(5):
        port = free_port()
        started = subprocess.run([str(script), "start", str(port), str(state)], capture_output=True, text=True,
                                 env={**os.environ, "DOVECOT_MAILDIR": str(maildir)}, timeout=60)
        if started.returncode == 0 or "Address already in use" not in started.stderr:
            break
    if started.returncode != 0:
        pytest.fail(f"dovecot did not start: {started.stderr[-2000:]}")
    specs = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    try:
        yield specs
    finally:
        subprocess.run([str(script), "stop", str(state)], capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)


def outcome(*args: str) -> dict:
    run = run_suite(*args, "-k", "dots", paths=SCENARIO)
    assert run.document is not None, run.stdout[-3000:]
    return run.result(ID)


def test_postfix_maildir_and_dovecot_imap_pop3() -> None:
    with real_server("postfix") as postfix:
        assert postfix.maildir is not None
        target = ["--smtp-target", f"postfix={postfix.address}"]
        direct = outcome(*target, "--smtp-mailbox", f"maildir:{postfix.maildir}")
        assert direct["outcome"] == "pass", direct["message"]
        with dovecot(postfix.maildir) as served:
            for kind in ("imap", "pop3"):
                result = outcome(*target, "--smtp-mailbox", served[kind])
                assert result["outcome"] == "pass", (kind, result["message"])
                events = [e["data"] for e in result["transcript"] if e["dir"] == "*"]
                assert any(e.startswith(f"mailbox {kind}://") and "1 stored message(s)" in e for e in events)


def test_maildev_api() -> None:
    with real_server("maildev") as maildev:
        assert maildev.api
        result = outcome("--smtp-target", f"maildev={maildev.address}", "--smtp-mailbox", f"maildev:{maildev.api}")
        assert result["outcome"] == "pass", result["message"]


def test_a_server_that_does_not_unstuff_fails_through_imap(faulty, tmp_path: Path) -> None:
    maildir = Path(tempfile.mkdtemp(prefix="smtpc-faulty-md-", dir="/tmp"))
    maildir.chmod(0o755)
    try:
        address = faulty("no-unstuff", maildir=str(maildir))
        with dovecot(maildir) as served:
            result = outcome("--smtp-target", address, "--smtp-mailbox", served["imap"])
        assert result["outcome"] == "fail", result["message"]
        assert "a stored message lacks" in result["message"]
    finally:
        shutil.rmtree(maildir, ignore_errors=True)
