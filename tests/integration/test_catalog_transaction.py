"""Negative proofs for the `transaction` area's scenarios (RFC 5321 §2.3.8, 3.3, 3.4, 4.1.1.4, 4.5.x, 6.3).

Every rule family is run against a server that breaks it and must then FAIL (NON-STRICT for a SHOULD,
INFO where the RFC leaves the branch open), and against a correct server, where it must PASS. The broken
servers are tests/servers/faulty.py with one fault each, plus a tiny SMTP server defined here for the
faults faulty.py does not have (bare CR as a line end, a stuffed dot taken for the end of data, the end
of data looked for per read, header policing, a 30-hop limit, recipient limits with the wrong code or
that drop the transaction, a limit on recipients named in the header, missing commands, case-sensitive
postmaster).

Everything goes through ONE run of the suite (a pytest subprocess): every (scenario, target) pair is
selected by its node id, so each target only runs the scenarios meant for it.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import scripted
from tests.support import catalog, mismatches, run_suite

R = "scenarios/rfc5321/"
FILES = [
    R + "seed-message.yaml",
    R + "2.3.8-line-endings.yaml",
    R + "3.3-mail-transactions.yaml",
    R + "3.4-forwarding.yaml",
    R + "4.1.1.4-data.yaml",
    R + "4.5.1-minimum-implementation.yaml",
    R + "4.5.2-transparency.yaml",
    R + "4.5.3.1-size-limits.yaml",
    R + "4.5.3.2-timeouts.yaml",
    R + "4.5.5-null-reverse-path.yaml",
    R + "6.3-loop-detection.yaml",
]

# Against the correct faulty server (no faults) everything passes except the branches the RFC leaves open.
CORRECT_NOT_PASS = {
    "rfc5321-2.3.8-bare-lf-in-data": "info",  # recorded branch: accepted
    "rfc5321-2.3.8-bare-cr-in-data": "info",
    "rfc5321-3.4-unknown-local-recipient": "info",  # faulty.py accepts every local part of its domain
}

# label -> (faults of tests/servers/faulty.py, {scenario id: expected outcome})
FAULTY: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "lf-ends-data": (("lf-ends-data",), {
        "rfc5321-4.1.1.4-lf-dot-lf-not-end-of-data": "fail",
        "rfc5321-2.3.8-lf-dot-crlf-not-end-of-data": "fail",
        "rfc5321-2.3.8-crlf-dot-lf-not-end-of-data": "fail",
        "rfc5321-2.3.8-cr-dot-cr-not-end-of-data": "pass",  # a bare CR is not an LF
    }),
    "bare-lf-lines": (("bare-lf-lines",), {
        "rfc5321-2.3.8-bare-lf-in-command": "fail",
        "rfc5321-2.3.8-bare-cr-in-command": "pass",
        "rfc5321-4.1.1.4-lf-dot-lf-not-end-of-data": "fail",
    }),
    "no-sequencing": (("no-sequencing",), {
        "rfc5321-3.3-rcpt-after-completed-transaction": "fail",
        "rfc5321-3.3-data-all-recipients-refused": "info",  # 354 without recipients: not forbidden by a MAY
    }),
    "data-no-reset": (("data-no-reset",), {
        "rfc5321-3.3-rcpt-after-completed-transaction": "fail",
        "rfc5321-4.1.1.4-new-transaction-after-data": "fail",
    }),
    "rcpt-aborts-transaction": (("rcpt-aborts-transaction",), {
        "rfc5321-3.3-refused-recipient-keeps-transaction": "fail",
        "rfc5321-3.3-several-recipients": "pass",
    }),
    "wrong-codes": (("wrong-codes",), {
        "rfc5321-3.3-rcpt-after-completed-transaction": "fail",
    }),
    "no-postmaster": (("no-postmaster",), {
        "rfc5321-4.5.1-postmaster-at-domain": "fail",
        "rfc5321-4.5.1-postmaster-uppercase-at-domain": "fail",
        "rfc5321-4.5.1-postmaster-unqualified": "fail",
        "rfc5321-4.5.1-postmaster-unqualified-other-case": "fail",
    }),
    "quit-no-reply": (("quit-no-reply",), {
        "rfc5321-4.5.1-quit-supported": "fail",
    }),
    "no-null-sender": (("no-null-sender",), {
        "rfc5321-4.5.5-null-reverse-path-accepted": "fail",
        "rfc5321-4.5.5-null-reverse-path-delivered": "fail",
    }),
    "short-limits": (("short-limits",), {
        "rfc5321-4.5.3.1.1-sender-local-part-64": "fail",
        "rfc5321-4.5.3.1.1-recipient-local-part-64": "fail",
        "rfc5321-4.5.3.1.2-domain-253": "fail",
        "rfc5321-4.5.3.1.3-path-256": "fail",
        "rfc5321-4.5.3.1.4-command-line-512": "fail",
    }),
    "max-10-rcpts": (("max-10-rcpts",), {
        "rfc5321-4.5.3.1.8-100-recipients": "fail",
        "rfc5321-4.5.3.1.10-too-many-recipients-452": "info",  # 5yz: a site-policy limit may use it
    }),
    "no-998": (("no-998",), {
        "rfc5321-4.5.3.1.6-text-line-1000": "fail",
        "rfc5321-4.5.3.1.6-text-line-1000-dot-stuffed": "fail",
    }),
}
IDLE_LABEL = "idle-2s"  # faulty.py with a 2 s command timeout
IDLE_EXPECT = {"rfc5321-4.5.3.2.7-idle-session-kept": "non-strict"}

# label -> (modes of the tiny server below, {scenario id: expected outcome})
TINY: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "cr-lines": (("cr-lines",), {
        "rfc5321-2.3.8-cr-dot-cr-not-end-of-data": "fail",
        "rfc5321-2.3.8-cr-dot-crlf-not-end-of-data": "fail",
        "rfc5321-2.3.8-bare-cr-in-command": "fail",
    }),
    "stuffed-dot-ends": (("stuffed-dot-ends",), {
        "rfc5321-seed-message-lone-dot-line": "fail",
        "rfc5321-4.5.2-leading-dot-line": "fail",
        "rfc5321-4.5.2-dot-line-before-end": "fail",
    }),
    "dot-run-ends": (("dot-run-ends",), {
        "rfc5321-4.5.2-double-dot-line": "fail",
    }),
    "per-read-eod": (("per-read-eod",), {
        "rfc5321-4.1.1.4-end-of-data-split-writes": "fail",
        "rfc5321-4.1.1.4-empty-data": "fail",
    }),
    "header-police": (("header-police",), {
        "rfc5321-3.3-header-defects-not-rejected": "non-strict",
        "rfc5321-3.3-resent-fields-not-rejected": "fail",
    }),
    "header-rcpt-100": (("header-rcpt-100",), {
        "rfc5321-4.5.3.1.8-many-header-recipients": "non-strict",
    }),
    "hops-30": (("hops-30",), {
        "rfc5321-6.3-99-received-fields-accepted": "non-strict",
    }),
    "rcpt-limit-451": (("rcpt-limit-451",), {
        "rfc5321-4.5.3.1.10-too-many-recipients-452": "fail",
    }),
    "limit-drops-all": (("limit-drops-all",), {
        "rfc5321-4.5.3.1.8-recipient-limit-orderly": "fail",
        "rfc5321-4.5.3.1.10-too-many-recipients-452": "pass",  # the 452 itself is right
    }),
    "missing-commands": (("unknown-HELO", "missing-RSET", "missing-NOOP", "unknown-VRFY", "missing-DATA"), {
        "rfc5321-4.5.1-helo-supported": "fail",
        "rfc5321-4.5.1-rset-supported": "fail",
        "rfc5321-4.5.1-noop-supported": "fail",
        "rfc5321-4.5.1-vrfy-supported": "fail",
        "rfc5321-4.5.1-data-supported": "fail",
        "rfc5321-4.5.1-mail-supported": "pass",
    }),
    "vrfy-disabled": (("missing-VRFY",), {
        "rfc5321-4.5.1-vrfy-supported": "non-strict",
    }),
    "postmaster-lowercase": (("postmaster-lowercase",), {
        "rfc5321-4.5.1-postmaster-at-domain": "pass",
        "rfc5321-4.5.1-postmaster-uppercase-at-domain": "fail",
        "rfc5321-4.5.1-postmaster-unqualified": "fail",
        "rfc5321-4.5.1-postmaster-unqualified-other-case": "fail",
    }),
}


# ----- a tiny SMTP server with switchable faults --------------------------------------------------------
class _TinySession(scripted.Session):
    """Just enough SMTP for the scenarios it is used with; correct unless a mode says otherwise."""

    server: _TinyServer
    greeting = "220 tiny.example.test ESMTP"
    DOMAIN = "example.test"
    over = False  # limit-drops-all: the recipient limit was reached in this transaction

    def line(self) -> bytes:
        ends = re.compile(rb"\r\n|\r|\n" if "cr-lines" in self.f else rb"\r\n")
        while True:
            m = ends.search(self.buf)
            if m and not (m.group() == b"\r" and m.end() == len(self.buf)):  # a CR may start a CRLF
                out, self.buf = self.buf[: m.start()], self.buf[m.end():]
                return out
            self.fill()

    def next_line(self) -> str:
        return self.line().decode("latin-1")

    def command(self, line: str) -> str | None:
        verb, _, arg = line.partition(" ")
        if f"unknown-{verb.upper()}" in self.f:
            self.send("500 5.5.2 command unrecognized")
        elif f"missing-{verb.upper()}" in self.f:
            self.send("502 5.5.1 command not implemented")
        else:
            return self.dispatch(verb, arg)
        return None

    def cmd_EHLO(self, arg: str) -> None:
        self.reset()
        self.send("250-tiny.example.test", "250 8BITMIME")

    def cmd_HELO(self, arg: str) -> None:
        self.reset()
        self.send("250 tiny.example.test")

    def cmd_MAIL(self, arg: str) -> None:
        self.mail, self.rcpts, self.over = arg, [], False
        self.send("250 2.1.0 ok")

    def cmd_RCPT(self, arg: str) -> None:
        self.send(self.rcpt(arg))

    def cmd_DATA(self, arg: str) -> None:
        if self.mail is None or not self.rcpts:
            self.send("554 5.5.1 no valid recipients" if self.mail else "503 5.5.1 need MAIL")
            return
        self.send("354 go ahead")
        reply = self.data()
        self.reset()
        if reply:
            self.send(reply)

    def cmd_VRFY(self, arg: str) -> None:
        self.send("252 2.1.5 cannot verify")

    def rcpt(self, arg: str) -> str:
        if self.mail is None:
            return "503 5.5.1 need MAIL"
        m = re.fullmatch(r"(?i)TO:<([^@>]*)(?:@([^>]*))?>", arg)
        if not m:
            return "501 5.1.3 bad address"
        local, domain = m.group(1), m.group(2)
        postmaster = local == "postmaster" if "postmaster-lowercase" in self.f else local.lower() == "postmaster"
        if domain is None and not postmaster:
            return "550 5.1.3 unqualified"
        if domain is not None and domain.lower() != self.DOMAIN:
            return "550 5.7.1 relaying denied"
        if not (postmaster or local == "user"):
            return "550 5.1.1 user unknown"
        if len(self.rcpts) >= 100 and "rcpt-limit-451" in self.f:
            return "451 4.3.0 too many recipients, try later"
        if "limit-drops-all" in self.f and (len(self.rcpts) >= 100 or self.over):
            self.rcpts, self.over = [], True  # the recipients accepted so far are silently dropped
            return "452 4.5.3 too many recipients"
        self.rcpts.append(f"{local}@{domain}")
        return "250 2.1.5 ok"

    def data(self) -> str | None:
        if "per-read-eod" in self.f:  # looks for the terminator at the end of each read only
            content, chunk, self.buf = self.buf, self.buf, b""
            while not chunk.endswith(b"\r\n.\r\n"):
                chunk = self.fill()
                content, self.buf = content + chunk, b""
            lines = content.split(b"\r\n")[:-2]
        else:
            lines = []
            while True:
                line = self.line()
                if line == b"." or ("stuffed-dot-ends" in self.f and line == b".."):
                    break
                if "dot-run-ends" in self.f and line and not line.strip(b"."):
                    break
                lines.append(line[1:] if line.startswith(b".") else line)
        header = b"\n".join(lines).split(b"\n\n")[0].lower()
        if "header-police" in self.f and (b"\ndate:" not in b"\n" + header
                                          or (b"resent-to:" in header and b"resent-from:" not in header)):
            return "554 5.6.0 malformed header section"
        if "header-rcpt-100" in self.f and header.count(b"@") > 100:
            return "554 5.7.1 too many recipients in the header"
        if "hops-30" in self.f and header.count(b"received:") > 30:
            return "554 5.4.0 too many hops"
        return "250 2.0.0 queued"


class _TinyServer(scripted.ScriptedServer):
    def __init__(self, modes: tuple[str, ...]) -> None:
        super().__init__(_TinySession, modes)


@pytest.fixture
def tiny() -> Iterator[Callable[..., str]]:
    """tiny(*modes) -> "127.0.0.1:PORT" of a tiny server running in this process."""
    with scripted.Servers() as servers:
        yield lambda *modes: servers.start(_TinyServer(modes)).address


# ----- tests --------------------------------------------------------------------------------------------
def test_catalog_loads_and_every_expectation_names_a_scenario() -> None:
    ids = catalog(FILES)
    assert len(ids) >= 40
    named = set(CORRECT_NOT_PASS) | set(IDLE_EXPECT)
    for _, expect in [*FAULTY.values(), *TINY.values()]:
        named |= set(expect)
    assert named <= set(ids), sorted(named - set(ids))


def test_broken_servers_fail_and_correct_servers_pass(faulty: Callable[..., str],
                                                      tiny: Callable[..., str], tmp_path: Path) -> None:
    ids = catalog(FILES)
    targets: dict[str, str] = {"correct": faulty(), "tiny": tiny()}
    wanted: dict[tuple[str, str], str] = {(sid, "correct"): CORRECT_NOT_PASS.get(sid, "pass") for sid in ids}
    for label, (faults, expect) in FAULTY.items():
        targets[label] = faulty(*faults)
        wanted.update({(sid, label): outcome for sid, outcome in expect.items()})
    targets[IDLE_LABEL] = faulty(idle_timeout=2.0)
    wanted.update({(sid, IDLE_LABEL): outcome for sid, outcome in IDLE_EXPECT.items()})
    for label, (modes, expect) in TINY.items():
        targets[label] = tiny(*modes)
        for sid, outcome in expect.items():
            wanted[(sid, label)] = outcome
            wanted[(sid, "tiny")] = "pass"  # the same server without the fault passes
    args = [a for label, address in targets.items() for a in ("--smtp-target", f"{label}={address}")]
    nodes = [f"{ids[sid]}::{sid}[{label}]" for sid, label in wanted]
    run = run_suite(*args, "--smtp-timeout", "3", "--smtp-concurrency", "48", paths=nodes, timeout=300, tmp=tmp_path)
    wrong = mismatches(run, wanted)
    assert not wrong, "\n".join(wrong)


def test_tiny_server_speaks_smtp(tiny: Callable[..., str]) -> None:
    """The tiny server itself: a plain transaction works (so its faults are the only difference)."""
    host, port = tiny().split(":")
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        f = sock.makefile("rwb")

        def cmd(text: str) -> bytes:
            f.write(text.encode() + b"\r\n")
            f.flush()
            return f.readline()

        assert f.readline().startswith(b"220 ")
        f.write(b"EHLO x\r\n")
        f.flush()
        assert f.readline() == b"250-tiny.example.test\r\n" and f.readline() == b"250 8BITMIME\r\n"
        assert cmd("MAIL FROM:<a@example.net>").startswith(b"250")
        assert cmd("RCPT TO:<user@example.test>").startswith(b"250")
        assert cmd("DATA").startswith(b"354")
        assert cmd("Subject: x\r\n\r\n..dot\r\n.").startswith(b"250")
        assert cmd("QUIT").startswith(b"221")
