"""Negative proofs for the stored-form scenarios (issue 12): what a server *stored*, not only what it replied.

Six servers that each store or account wrongly in exactly one way (tests/servers/stored.py) must FAIL the
scenario about that one thing, at its RFC level and at the step that checks it; the same server without the
fault, the builtin and the real servers that do it right must PASS the same scenarios. Everything goes
through the suite as a user runs it (pytest in a subprocess, a targets file giving each server its Maildir).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.baseline import compare, format_comparison, load_baseline
from tests.servers.stored import STORED_FAULTS, start_stored
from tests.support import REPO, SERVERS, catalog, free_port, mismatches, missing, real_server, run_selected

FILES = [
    "scenarios/rfc5321/4.5.2-stored-form.yaml",
    "scenarios/rfc5321/4.1.1.5-state-delivery.yaml",
    "scenarios/rfc5321/2.4-domain-case.yaml",
    "scenarios/rfc1870/4-size-boundary.yaml",
    "scenarios/rfc3030/2-chunking-stored.yaml",
    "scenarios/rfc6531/3-smtputf8-stored.yaml",
    "scenarios/rfc5321/4.1.1.1-helo-domain.yaml",
    "scenarios/rfc5321/3.5.1-vrfy-bare-local-part.yaml",
    "scenarios/rfc2920/3.1-after-end-of-data.yaml",
    "scenarios/rfc5321/4.5.3.1.8-recipients-stored.yaml",
    "scenarios/rfc5321/2.1-recipient-copies.yaml",
]

# fault of tests/servers/stored.py -> the scenario it must break, text of the step that decides it (its YAML),
# and the outcome (the level of that scenario's sentence). The first six are issue 12's list.
DECISIVE: dict[str, tuple[str, str, str]] = {
    "no-unstuff": ("rfc5321-4.5.2-stored-unstuffed-once", "delivered", "fail"),
    "truncate-long-lines": ("rfc5321-4.5.3.1.6-text-line-998-stored-intact", "delivered", "fail"),
    "bdat-last-chunk-only": ("rfc3030-2-bdat-chunks-concatenated", "delivered", "fail"),
    "rset-keeps-rcpts": ("rfc5321-4.1.1.5-rset-recipients-not-delivered", "delivered", "fail"),
    "domain-case-sensitive": ("rfc5321-2.4-recipient-domain-case-insensitive", "RCPT TO:<user@EXAMPLE.TEST>", "fail"),
    "size-off-by-one": ("rfc1870-4-message-of-exactly-size-accepted", "pad_to", "fail"),
    "strip-trailing-space": ("rfc5321-4.5.2-stored-characters-kept", "delivered", "fail"),
    "trim-trailing-empty-lines": ("rfc5321-4.1.1.4-stored-end-as-sent", "delivered", "fail"),
    "unfold-headers": ("rfc5321-4.5.2-stored-header-and-body-as-sent", "sent_headers", "fail"),
    "helo-no-domain": ("rfc5321-4.1.1.1-helo-reply-domain", "HELO", "non-strict"),  # "Hello": a lone label
    "vrfy-needs-domain": ("rfc5321-3.5.1-vrfy-bare-local-part", "VRFY user", "fail"),
    "eod-pipeline-503": ("rfc2920-3.1-commands-after-end-of-data", "send: RSET", "fail"),  # first after the dot
    "first-recipient-only": ("rfc5321-2.1-copy-for-each-recipient", "delivered", "fail"),
    "utf8-headers-downgraded": ("rfc6531-3.2-utf8-headers-stored", "delivered", "fail"),
    "drop-many-rcpts": ("rfc5321-4.5.3.1.8-100-recipients-delivered", "delivered", "fail"),
}
# other scenarios a fault also breaks (each its own accusation), and ones it must leave alone
ALSO: dict[str, dict[str, str]] = {
    "no-unstuff": {"rfc5321-4.5.3.1.6-text-line-998-stored-intact": "fail",  # its dot line kept both dots
                   "rfc5321-4.5.2-stored-characters-kept": "pass",
                   "rfc1870-4-message-one-above-size-refused": "pass"},
    "truncate-long-lines": {"rfc5321-4.5.2-stored-unstuffed-once": "pass"},
    "bdat-last-chunk-only": {"rfc5321-4.5.2-stored-header-and-body-as-sent": "pass"},  # DATA is stored right
    "rset-keeps-rcpts": {"rfc5321-4.1.4-ehlo-recipients-not-delivered": "pass",  # only RSET is broken
                         "rfc5321-4.1.1.5-rset-new-recipient-only": "fail"},
    "domain-case-sensitive": {"rfc5321-4.5.2-stored-unstuffed-once": "pass"},
    "size-off-by-one": {"rfc1870-4-message-one-above-size-refused": "pass"},
    "strip-trailing-space": {"rfc5321-4.1.1.4-stored-end-as-sent": "pass"},
    "trim-trailing-empty-lines": {"rfc5321-4.5.2-stored-characters-kept": "pass"},
    "unfold-headers": {"rfc5321-4.5.2-stored-unstuffed-once": "pass"},
    "helo-no-domain": {"rfc5321-4.1.1.1-helo-recipients-not-delivered": "pass"},
    "vrfy-needs-domain": {},
    "eod-pipeline-503": {"rfc5321-4.5.2-stored-unstuffed-once": "pass"},
    "first-recipient-only": {"rfc5321-4.1.1.5-rset-new-recipient-only": "pass"},  # one recipient: its copy
    "utf8-headers-downgraded": {"rfc5321-4.5.2-stored-header-and-body-as-sent": "pass"},  # ASCII headers kept
    "drop-many-rcpts": {"rfc5321-2.1-copy-for-each-recipient": "pass"},  # two recipients are stored
}
# faults of tests/servers/faulty.py that the new scenarios must catch too
FAULTY: dict[str, tuple[str, dict[str, str]]] = {
    "ehlo-no-reset": ("ehlo-no-reset", {"rfc5321-4.1.4-ehlo-recipients-not-delivered": "fail",
                                        "rfc5321-4.1.1.1-helo-recipients-not-delivered": "fail",
                                        "rfc5321-4.1.1.5-rset-recipients-not-delivered": "pass"}),
    "size-not-enforced": ("size-not-enforced", {"rfc1870-4-message-one-above-size-refused": "fail"}),
}
# on the correct stored server (tests/servers/stored.py without a fault): everything passes
CORRECT_NOT_PASS: dict[str, str] = {}
# the builtin (aiosmtpd with a Maildir): no CHUNKING
BUILTIN_NOT_PASS = {"rfc3030-2-bdat-chunks-concatenated": "unsupported",
                    # one copy for all recipients, naming none of them when there are two
                    "rfc5321-2.1-copy-for-each-recipient": "unsupported"}
TIMEOUT = ("--smtp-timeout", "30")


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[Any]:
    """stored(fault or None) -> the targets-file entry of a stored.py server with its own Maildir."""
    stops = []

    def start(fault: str | None) -> dict[str, str]:
        maildir = tmp_path / f"maildir-{fault or 'correct'}"
        address, stop = start_stored(fault, maildir=maildir)
        stops.append(stop)
        return {"address": address, "mailbox": f"maildir:{maildir}"}

    yield start
    for stop in stops:
        stop()


def _step_yaml(result: dict[str, Any]) -> str:
    return (result.get("step") or {}).get("yaml") or ""


def test_every_fault_has_its_decisive_scenario() -> None:
    ids = catalog(FILES)
    assert set(DECISIVE) == set(STORED_FAULTS)
    named = {sid for sid, _, _ in DECISIVE.values()} | {sid for extra in ALSO.values() for sid in extra}
    named |= {sid for _, extra in FAULTY.values() for sid in extra}
    assert named <= set(ids), sorted(named - set(ids))
    assert set(ALSO) == set(DECISIVE)


def test_faulty_stores_fail_and_the_correct_one_passes(stored: Any, faulty: Any, tmp_path: Path) -> None:
    ids = catalog(FILES)
    targets = {"correct": stored(None), "builtin": {"builtin": True}}
    wanted = {(sid, "correct"): CORRECT_NOT_PASS.get(sid, "pass") for sid in ids}
    wanted.update({(sid, "builtin"): BUILTIN_NOT_PASS.get(sid, "pass") for sid in ids})
    for fault, (sid, _, outcome) in DECISIVE.items():
        targets[fault] = stored(fault)
        wanted[(sid, fault)] = outcome
        wanted.update({(other, fault): o for other, o in ALSO[fault].items()})
    for label, (fault, expect) in FAULTY.items():
        maildir = tmp_path / f"faulty-{label}"
        targets[label] = {"address": faulty(fault, maildir=maildir), "mailbox": f"maildir:{maildir}"}
        wanted.update({(sid, label): o for sid, o in expect.items()})
    run = run_selected(targets, wanted, ids, tmp_path, *TIMEOUT, concurrency=16, timeout=600)
    wrong = mismatches(run, wanted)
    assert not wrong, "\n".join(wrong)
    for fault, (sid, decisive, _) in DECISIVE.items():
        result = run.result(sid, fault)
        assert result["level"] in ("MUST", "MUST NOT"), (fault, result["level"])
        assert decisive in _step_yaml(result), (fault, result["step"], result["message"])


@contextlib.contextmanager
def _real_target(name: str) -> Iterator[dict[str, str]]:
    with real_server(name) as server:
        mailbox = f"maildev:{server.api}" if server.api else f"maildir:{server.maildir}"
        yield {"address": server.address, "mailbox": mailbox}


@pytest.mark.parametrize("name", ["postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-server", "maildev"])
def test_real_servers_show_only_their_documented_deviations(name: str, tmp_path: Path) -> None:
    """The stored-form scenarios against a real server: no ERROR, and every non-PASS is in baselines/<name>/
    with its reason (a false FAIL would show up here as a NEW deviation)."""
    ids = catalog(FILES)
    baseline = load_baseline(REPO / "baselines" / name)
    with _real_target(name) as target:
        wanted = {(sid, name): "pass" for sid in ids}
        run = run_selected({name: target}, wanted, ids, tmp_path, *TIMEOUT, concurrency=4, timeout=900)
    assert run.document is not None, run.stdout[-3000:] + run.stderr[-2000:]
    results = run.document["results"]
    assert len(results) == len(ids)
    assert not [r for r in results if r["outcome"] == "error"], [(r["id"], r["message"]) for r in results
                                                                 if r["outcome"] == "error"]
    comparison = compare(results, baseline)
    assert comparison.clean, "\n" + format_comparison(name, comparison)


# ----- the same body checks through Dovecot (IMAP and POP3) ------------------------------------------------
BODY_CHECKS = ["rfc5321-4.5.2-stored-unstuffed-once", "rfc5321-4.5.2-stored-characters-kept",
               "rfc5321-4.5.2-stored-header-and-body-as-sent", "rfc5321-4.1.1.4-stored-end-as-sent",
               "rfc5321-4.5.3.1.6-text-line-998-stored-intact"]


@contextlib.contextmanager
def _dovecot(maildir: Path) -> Iterator[dict[str, str]]:
    """Dovecot serving maildir over IMAP and POP3 (as tests/integration/test_delivery_real.py starts it)."""
    script = SERVERS / "dovecot"
    if subprocess.run([str(script), "check"], capture_output=True).returncode != 0:
        missing("dovecot is not installed (scripts/servers/install dovecot)")
    state = Path(tempfile.mkdtemp(prefix="smtpc-dovecot-", dir="/tmp"))
    state.chmod(0o755)
    for _ in range(5):  # Dovecot binds without SO_REUSEADDR: retry on a busy port
        started = subprocess.run([str(script), "start", str(free_port()), str(state)], capture_output=True,
                                 text=True, env={**os.environ, "DOVECOT_MAILDIR": str(maildir)}, timeout=60)
        if started.returncode == 0 or "Address already in use" not in started.stderr:
            break
    if started.returncode != 0:
        pytest.fail(f"dovecot did not start: {started.stderr[-2000:]}")
    try:
        yield dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    finally:
        subprocess.run([str(script), "stop", str(state)], capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)


def test_body_checks_through_dovecot_imap_and_pop3(tmp_path: Path) -> None:
    """Postfix stores, Dovecot serves the Maildir over IMAP and POP3: the body checks pass through both; the
    stored.py servers that keep the stuffing dot or cut long lines fail through IMAP as they do in the Maildir."""
    ids = catalog(FILES)
    targets: dict[str, dict[str, str]] = {}
    wanted: dict[tuple[str, str], str] = {}
    with contextlib.ExitStack() as stack:
        postfix = stack.enter_context(real_server("postfix"))
        assert postfix.maildir is not None
        served = stack.enter_context(_dovecot(postfix.maildir))
        for kind in ("imap", "pop3"):
            targets[f"postfix-{kind}"] = {"address": postfix.address, "mailbox": served[kind]}
            wanted.update({(sid, f"postfix-{kind}"): "pass" for sid in BODY_CHECKS})
        for fault in ("no-unstuff", "truncate-long-lines"):
            maildir = Path(tempfile.mkdtemp(prefix=f"smtpc-stored-{fault}-", dir="/tmp"))
            stack.callback(shutil.rmtree, maildir, True)
            maildir.chmod(0o755)
            address, stop = start_stored(fault, maildir=maildir)
            stack.callback(stop)
            imap = stack.enter_context(_dovecot(maildir))["imap"]
            targets[fault] = {"address": address, "mailbox": imap}
            wanted[(DECISIVE[fault][0], fault)] = "fail"
        run = run_selected(targets, wanted, ids, tmp_path, *TIMEOUT, concurrency=4, timeout=900)
    wrong = mismatches(run, wanted)
    assert not wrong, "\n".join(wrong)
