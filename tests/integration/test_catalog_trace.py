"""RFC 5321 scenarios judged on what the server stored, and the other requirement-traceability additions.

The scenarios: §4.4 trace fields (Received at the top with FROM/BY and a date with a four-digit year and a
numeric zone, registered WITH/VIA/clause names, one path in FOR, earlier Received lines kept in order,
Return-Path at final delivery, one Return-Path), §2.1 a message acknowledged with 250 is stored, §4.2.5 one
refused after the data is not, §4.1.1.4 no empty line added at the end, §4.1.1.10/§4.1.1.5 an interrupted
transaction is dropped and a completed one kept, §2.4 local-part case preserved, §7.2 blind copies, §3.6.1
source routes, and the reply-level ones (§3.3, §3.5.2, §3.5.3, §4.1.5, §4.2.4, §4.5.3.1.7).

Negative proof (one suite run): each rule family FAILs (NON-STRICT for a SHOULD) against a server that
breaks it and PASSes against one that keeps it. `_Trace`, a small server defined here, is correct by
default — a catch-all for its domain that stores one Maildir file per message with a Return-Path and an RFC
5321 Received field — and has one switchable fault per rule; tests/servers/faulty.py adds two real-world
faults (its Received field lists every recipient in FOR; `wrong-codes` answers refusals with 250). A
second test proves the 4yz-after-data scenario on Postfix configured to defer every message at the end
of the data (the suite's servers accept by default, so the catalog shows it UNSUPPORTED there).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import scripted
from tests.support import SuiteRun, catalog, mismatches, real_server, run_selected

S = "scenarios/rfc5321/"
FILES = [S + f for f in (
    "4.4-trace.yaml", "2.1-delivery-responsibility.yaml", "4.1.1.4-no-extra-crlf.yaml", "4.2.5-refused-data.yaml",
    "4.1.1.10-premature-close.yaml", "4.1.1.5-connection-closed.yaml", "2.4-local-part-case.yaml",
    "7.2-blind-copies.yaml", "3.6.1-source-route-delivery.yaml", "3.3-mailbox-refusal.yaml",
    "3.5.2-vrfy-expn-usable-addresses.yaml", "3.5.3-vrfy-unverifiable.yaml", "4.1.5-private-commands.yaml",
    "4.2.4-recognized-not-implemented.yaml", "4.5.3.1.7-size-extension.yaml")]
TIMEOUT = ("--smtp-timeout", "5")
DOMAIN = "example.test"

# The correct _Trace server: everything passes except the scenarios that need a refusal it does not give.
TRACE_CORRECT_NOT_PASS = {"rfc5321-4.2.5-4yz-after-data-not-delivered": "unsupported"}

# label -> (faults of _Trace, {scenario id: expected outcome})
TRACE: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "no-received": (("no-received",), {
        "rfc5321-4.4-received-prepended": "fail",
        "rfc5321-4.4-received-stamp-structure": "pass",  # judged once, by the scenario above
        "rfc5321-4.4-received-date-no-obsolete-forms": "pass"}),
    "received-below": (("received-below",), {"rfc5321-4.4-received-prepended": "fail"}),
    "no-from": (("no-from",), {"rfc5321-4.4-received-stamp-structure": "fail",
                               "rfc5321-4.4-received-from-clause-content": "pass"}),
    "no-date": (("no-date",), {"rfc5321-4.4-received-stamp-structure": "fail",
                               "rfc5321-4.4-received-date-no-obsolete-forms": "pass",
                               "rfc5321-4.4-received-clauses-registered": "pass"}),
    "two-digit-year": (("two-digit-year",), {"rfc5321-4.4-received-date-no-obsolete-forms": "fail",
                                             "rfc5321-4.4-received-stamp-structure": "pass"}),
    "date-header-two-digit-year": (("date-header-two-digit-year",), {
        "rfc5321-4.4-received-date-no-obsolete-forms": "fail"}),
    "zone-name": (("zone-name",), {"rfc5321-4.4-received-date-no-obsolete-forms": "fail",
                                   "rfc5321-4.4-received-date-zone": "non-strict"}),
    "minus-zero": (("minus-zero",), {"rfc5321-4.4-received-date-zone": "non-strict",
                                     "rfc5321-4.4-received-date-no-obsolete-forms": "pass"}),
    "zone-after-offset": (("zone-after-offset",), {"rfc5321-4.4-received-date-zone": "non-strict"}),
    "no-client-name": (("no-client-name",), {"rfc5321-4.4-received-from-clause-content": "non-strict",
                                             "rfc5321-4.4-received-stamp-structure": "pass"}),
    "no-client-ip": (("no-client-ip",), {"rfc5321-4.4-received-from-clause-content": "non-strict"}),
    "with-unregistered": (("with-unregistered",), {"rfc5321-4.4-with-protocol-registered": "non-strict",
                                                   "rfc5321-4.4-received-stamp-structure": "pass"}),
    "via-unregistered": (("via-unregistered",), {"rfc5321-4.4-via-link-registered": "non-strict",
                                                 "rfc5321-4.4-received-clauses-registered": "pass"}),
    "via-tcp": (("via-tcp",), {"rfc5321-4.4-via-link-registered": "pass",
                               "rfc5321-4.4-received-clauses-registered": "pass"}),
    "extra-clause": (("extra-clause",), {"rfc5321-4.4-received-clauses-registered": "non-strict",
                                         "rfc5321-4.4-received-stamp-structure": "pass"}),
    "for-all-recipients": (("for-all",), {"rfc5321-4.4-for-clause-one-path": "fail",
                                          "rfc5321-7.2-recipients-not-copied-to-header": "non-strict"}),
    "recipients-header": (("recipients-header",), {"rfc5321-7.2-recipients-not-copied-to-header": "non-strict",
                                                   "rfc5321-4.4-for-clause-one-path": "pass"}),
    "rewrite-received": (("rewrite-received",), {"rfc5321-4.4-existing-received-kept": "fail"}),
    "received-after-existing": (("received-after-existing",), {"rfc5321-4.4-existing-received-kept": "fail",
                                                               "rfc5321-4.4-received-prepended": "pass"}),
    "no-return-path": (("no-return-path",), {"rfc5321-4.4-return-path-at-delivery": "fail",
                                             "rfc5321-4.4-one-return-path": "pass"}),
    "keep-client-return-path": (("keep-client-return-path",), {"rfc5321-4.4-one-return-path": "non-strict",
                                                               "rfc5321-4.4-return-path-at-delivery": "pass"}),
    "lowercase-local-part": (("lowercase-sender",), {"rfc5321-2.4-local-part-case-preserved": "fail",
                                                     "rfc5321-4.4-return-path-at-delivery": "pass"}),
    "lose-accepted": (("lose-accepted",), {"rfc5321-2.1-accepted-message-stored": "fail"}),
    "extra-crlf": (("extra-crlf",), {"rfc5321-4.1.1.4-no-extra-crlf-stored": "fail"}),
    "store-refused-5yz": (("store-refused",), {"rfc5321-4.2.5-5yz-after-data-not-delivered": "fail"}),
    "deliver-some-refuse-5yz": (("partial-refused",), {"rfc5321-4.2.5-5yz-after-data-not-delivered": "fail"}),
    "defer-correct": (("defer",), {"rfc5321-4.2.5-4yz-after-data-not-delivered": "pass"}),
    "defer-but-store": (("defer", "store-refused"), {"rfc5321-4.2.5-4yz-after-data-not-delivered": "fail"}),
    "store-interrupted": (("store-interrupted",), {
        "rfc5321-4.1.1.10-interrupted-transaction-not-delivered": "fail",
        "rfc5321-4.1.1.5-close-without-quit-keeps-completed": "pass"}),
    "commit-on-quit": (("commit-on-quit",), {
        "rfc5321-4.1.1.5-close-without-quit-keeps-completed": "non-strict",
        "rfc5321-4.1.1.10-interrupted-transaction-not-delivered": "fail",
        "rfc5321-2.1-accepted-message-stored": "pass"}),  # the delivery checks come after a QUIT
    "apparently-to": (("apparently-to",), {"rfc5321-7.2-no-apparently-to": "non-strict",
                                           "rfc5321-7.2-header-not-rewritten-from-envelope": "non-strict"}),
    "to-from-envelope": (("to-from-envelope",), {"rfc5321-7.2-header-not-rewritten-from-envelope": "non-strict",
                                                 "rfc5321-7.2-no-apparently-to": "pass"}),
    "route-honoured": (("route-honoured",), {"rfc5321-3.6.1-source-route-ignored-delivered": "non-strict"}),
    "route-refused": (("route-refused",), {"rfc5321-3.6.1-source-route-ignored-delivered": "pass"}),
    "refusal-as-2yz": (("refusal-as-2yz",), {"rfc5321-3.3-unknown-recipient-refusal-class": "fail"}),
    "refusal-5yz": (("known-users-only",), {"rfc5321-3.3-unknown-recipient-refusal-class": "pass",
                                            "rfc5321-4.4-for-clause-one-path": "pass"}),
    "vrfy-program": (("vrfy-program",), {"rfc5321-3.5.2-vrfy-addresses-usable-in-rcpt": "fail",
                                         "rfc5321-3.5.2-expn-addresses-usable-in-rcpt": "fail"}),
    "vrfy-bare-user": (("vrfy-bare-user",), {"rfc5321-3.5.2-vrfy-addresses-usable-in-rcpt": "fail"}),
    "vrfy-real": (("vrfy-real",), {"rfc5321-3.5.2-vrfy-addresses-usable-in-rcpt": "pass",
                                   "rfc5321-3.5.2-expn-addresses-usable-in-rcpt": "pass",
                                   "rfc5321-3.5.3-vrfy-unverifiable-252": "pass"}),
    "vrfy-250-anything": (("vrfy-250",), {"rfc5321-3.5.3-vrfy-unverifiable-252": "fail"}),
    "vrfy-251-anything": (("vrfy-251",), {"rfc5321-3.5.3-vrfy-unverifiable-252": "non-strict"}),
    "accept-unknown-command": (("accept-unknown",), {"rfc5321-4.1.5-unregistered-command-not-accepted": "fail"}),
    "expn-500-after-501": (("expn-500",), {"rfc5321-4.2.4-recognized-expn-502": "non-strict"}),
    "size-unannounced": (("no-size",), {"rfc5321-4.5.3.1.7-size-limit-announced": "non-strict"}),
    "no-size-no-limit": (("no-size", "no-limit"), {"rfc5321-4.5.3.1.7-size-limit-announced": "pass"}),
}

# tests/servers/faulty.py (its own Maildir): real-world faults that _Trace does not need to copy.
FAULTY: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    # faulty.py accepts every local part of its domain and writes "for <a>, <b>" in its Received field
    "faulty-ok": ((), {"rfc5321-4.4-for-clause-one-path": "fail",
                       "rfc5321-7.2-recipients-not-copied-to-header": "non-strict",
                       "rfc5321-4.4-received-prepended": "pass", "rfc5321-4.4-received-stamp-structure": "pass",
                       "rfc5321-4.4-return-path-at-delivery": "pass",
                       "rfc5321-4.1.5-unregistered-command-not-accepted": "pass"}),
    "faulty-wrong-codes": (("wrong-codes",), {"rfc5321-4.1.5-unregistered-command-not-accepted": "fail",
                                              "rfc5321-4.3.1-accepted-rcpt-honoured": "fail"}),
}
EXTRA_FILES = [S + "4.3.1-replies.yaml"]  # rfc5321-4.3.1-accepted-rcpt-honoured now also checks §3.3


# ----- _Trace: a small catch-all server that stores what it accepts, correct unless a fault says otherwise -----
HOPS_LIMIT = 100
SIZE_LIMIT = 1_000_000


class _Trace(scripted.Session):
    greeting = "220 trace.example.test ESMTP"
    tag = "trace"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.helo = ""
        self.pending: list[bytes] = []  # commit-on-quit: messages accepted but not yet stored

    def reset(self) -> None:
        super().reset()
        self.routed = False

    def data(self) -> bytes:
        acc, self.buf = b"\r\n" + self.buf, b""
        while (i := acc.find(b"\r\n.\r\n")) < 0:
            try:
                self.fill()
            except scripted.Closed:
                if "store-interrupted" in self.f and len(acc) > 2:
                    self.store(acc[2:])
                raise
            acc, self.buf = acc + self.buf, b""
        content, self.buf = acc[2:i + 2], acc[i + 5:]
        return b"\r\n".join(x[1:] if x.startswith(b".") else x for x in content.split(b"\r\n"))

    # ----- storage -----
    def trace(self, content: bytes) -> bytes:
        f, rcpts = self.f, self.rcpts
        date = email.utils.formatdate(localtime=False)  # "Fri, 27 Nov 2026 10:34:02 -0000"
        date = date[:-5] + ("-0000" if "minus-zero" in f else "+0000")
        if "two-digit-year" in f:
            date = re.sub(r" (\d\d)(\d\d) ", r" \2 ", date)
        if "zone-name" in f:
            date = date[:-5] + "GMT"
        if "zone-after-offset" in f:
            date += " UTC"
        name = "unknown" if "no-client-name" in f else self.helo
        ip = "" if "no-client-ip" in f else f" ([{self.peer[0]}])"
        clauses = " with HTTP" if "with-unregistered" in f else " with ESMTP"
        clauses += " via UUCP" if "via-unregistered" in f else " via TCP" if "via-tcp" in f else ""
        clauses += f" id T{time.time_ns() % 10**9}"
        clauses += f" envelope-from <{self.mail}>" if "extra-clause" in f else ""
        if "for-all" in f:
            clauses += " for " + ", ".join(f"<{r}>" for r in rcpts)
        elif len(rcpts) == 1:
            clauses += f" for <{rcpts[0]}>"
        head = "" if "no-from" in f else f"from {name}{ip}\r\n\t"
        received = f"Received: {head}by trace.example.test{clauses}" + ("" if "no-date" in f else f";\r\n\t{date}")
        lines = content.split(b"\r\n")
        header_end = lines.index(b"") if b"" in lines else len(lines)
        header, body = lines[:header_end], lines[header_end:]
        if "keep-client-return-path" not in f:
            header = [x for x in header if not x.lower().startswith(b"return-path:")]
        if "rewrite-received" in f:
            header = [x.replace(b" with ESMTP id R2;", b" with esmtp id R2;") for x in header]
        has_to = any(x.lower().startswith((b"to:", b"cc:", b"bcc:")) for x in header)
        if "apparently-to" in f and not has_to:
            header += [f"Apparently-To: <{r}>".encode() for r in rcpts]
        if "to-from-envelope" in f and not has_to:
            header.append(("To: " + ", ".join(f"<{r}>" for r in rcpts)).encode())
        if "recipients-header" in f:
            header.append(("X-Recipients: " + ", ".join(rcpts)).encode())
        if "date-header-two-digit-year" in f:
            header.append(b"Date: Fri, 27 Nov 26 10:34:02 +0000")
        new = [received.encode()]
        if "received-below" in f:
            header = header[:1] + new + header[1:]
        elif "received-after-existing" in f:
            last = max((i for i, x in enumerate(header) if x.lower().startswith(b"received:")), default=-1)
            header = header[:last + 1] + new + header[last + 1:]
        elif "no-received" not in f:
            header = new + header
        sender = self.mail or ""
        if "lowercase-sender" in f:
            local, at, domain = sender.rpartition("@")
            sender = f"{local.lower()}{at}{domain}"
        top = [] if "no-return-path" in f else [f"Return-Path: <{sender}>".encode()]
        out = b"\r\n".join(top + header + body)
        return out + b"\r\n" if "extra-crlf" in f else out

    # ----- commands -----
    def unknown(self, verb: str, arg: str) -> None:
        self.send("250 2.0.0 ok" if "accept-unknown" in self.f else self.unrecognized)

    def cmd_EHLO(self, arg: str) -> None:
        self.reset()
        self.helo = arg.strip() or "unknown"
        words = ["8BITMIME", "HELP"] if "no-size" in self.f else [f"SIZE {SIZE_LIMIT}", "8BITMIME", "HELP"]
        self.send("250-trace.example.test", *(f"250-{w}" for w in words[:-1]), f"250 {words[-1]}")

    def cmd_HELO(self, arg: str) -> None:
        self.reset()
        self.helo = arg.strip() or "unknown"
        self.send("250 trace.example.test")

    def cmd_QUIT(self, arg: str) -> str | None:
        for content in self.pending:
            self.store(content)
        return super().cmd_QUIT(arg)

    def cmd_HELP(self, arg: str) -> None:
        self.send("214 2.0.0 see RFC 5321")

    def cmd_VRFY(self, arg: str) -> None:
        f, name = self.f, arg.strip().strip("<>")
        if not name:
            self.send("501 5.5.4 syntax: VRFY name")
        elif "vrfy-program" in f:
            self.send("250 2.1.5 <|/usr/bin/procmail -f->")
        elif "vrfy-bare-user" in f:
            self.send(f"250 2.1.5 User <{name.partition('@')[0]}>")
        elif "vrfy-250" in f:
            self.send(f"250 2.1.5 <{name}>")
        elif "vrfy-251" in f:
            self.send(f"251 2.1.5 user not local; will forward to <{name}>")
        elif "vrfy-real" in f and name.lower() in (f"user@{DOMAIN}", "user"):
            self.send(f"250 2.1.5 Test User <user@{DOMAIN}>")
        elif "vrfy-real" in f and not name.lower().endswith("@" + DOMAIN):
            self.send("550 5.7.1 not a local address")
        else:
            self.send("252 2.1.5 cannot VRFY user, but will accept message and attempt delivery")

    def cmd_EXPN(self, arg: str) -> None:
        f = self.f
        if "expn-500" in f:
            self.send("501 5.5.4 syntax: EXPN list" if not arg.strip() else "500 5.5.2 command unrecognized")
        elif "vrfy-program" in f and arg.strip():
            self.send("250-2.1.5 <user@example.test>", "250 2.1.5 |/usr/bin/procmail")
        elif "vrfy-real" in f and arg.strip():
            self.send(f"250 2.1.5 Test User <user@{DOMAIN}>")
        else:
            self.send("502 5.5.1 EXPN not implemented")

    def cmd_MAIL(self, arg: str) -> None:
        m = re.fullmatch(r"(?i)FROM:<([^<>\s]*)>.*", arg)
        if self.mail is not None:
            return self.send("503 5.5.1 nested MAIL")
        if not m:
            return self.send("501 5.5.4 syntax: MAIL FROM:<path>")
        self.mail = m.group(1)
        self.send("250 2.1.0 sender ok")

    def cmd_RCPT(self, arg: str) -> None:
        m = re.fullmatch(r"(?i)TO:<(@[^:<>]+:)?([^<>\s]*)>.*", arg)
        if self.mail is None:
            return self.send("503 5.5.1 need MAIL")
        if not m:
            return self.send("501 5.5.4 syntax: RCPT TO:<path>")
        if m.group(1) and "route-refused" in self.f:
            return self.send("550 5.7.1 source routes are not accepted")
        local, _, domain = m.group(2).rpartition("@")
        if domain.lower() != DOMAIN:
            return self.send("550 5.7.1 relaying denied")
        if local.lower() not in ("user", "postmaster"):
            if "refusal-as-2yz" in self.f:
                return self.send("252 2.1.1 no such user here")
            if "known-users-only" in self.f:
                return self.send("550 5.1.1 user unknown")
        self.routed |= bool(m.group(1))
        self.rcpts.append(m.group(2))
        self.send("250 2.1.5 recipient ok")

    def cmd_DATA(self, arg: str) -> None:
        f = self.f
        if self.mail is None or not self.rcpts:
            return self.send("503 5.5.1 need MAIL and RCPT")
        self.send("354 end data with <CR><LF>.<CR><LF>")
        content = self.data()
        try:
            stored = self.trace(content)
            hops = len(re.findall(rb"(?im)^received:", content))
            if len(content) > SIZE_LIMIT and "no-limit" not in f:
                return self.send("552 5.3.4 message size exceeds fixed maximum message size")
            if hops > HOPS_LIMIT or "defer" in f:
                if "store-refused" in f:
                    self.store(stored)
                if "partial-refused" in f:  # "delivered" to the first recipient, then refused for all
                    self.rcpts = self.rcpts[:1]
                    self.store(self.trace(content))
                return self.send("451 4.3.0 try again later" if "defer" in f else "554 5.4.6 too many hops")
            if self.routed and "route-honoured" in f:  # sent on along the route: not stored here
                return self.send("250 2.0.0 relayed")
            if "commit-on-quit" in f:
                self.pending.append(stored)
            elif "lose-accepted" not in f:
                self.store(stored)
            self.send("250 2.0.0 queued")
        finally:
            self.reset()


@pytest.fixture
def trace(tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    """trace(*faults) -> ("127.0.0.1:PORT", maildir) of a _Trace server running in this process."""
    with scripted.Servers() as servers:
        yield lambda *faults: servers.with_maildir(_Trace, faults, tmp_path / f"trace-{len(servers)}")


# ----- helpers ------------------------------------------------------------------------------------------
def _run(targets: dict[str, dict[str, str]], wanted: dict[tuple[str, str], str], ids: dict[str, str], tmp: Path,
         *args: str) -> SuiteRun:
    return run_selected(targets, wanted, ids, tmp, *args, concurrency=64, timeout=600)


# ----- tests --------------------------------------------------------------------------------------------
def test_every_scenario_meets_a_server_that_breaks_it() -> None:
    ids = catalog(FILES + EXTRA_FILES)
    named = set(TRACE_CORRECT_NOT_PASS)
    for _, expect in [*TRACE.values(), *FAULTY.values()]:
        named |= set(expect)
    assert named <= set(ids), sorted(named - set(ids))
    proven = {sid for _, expect in [*TRACE.values(), *FAULTY.values()] for sid, o in expect.items() if o != "pass"}
    new = set(catalog(FILES))
    assert not new - proven, sorted(new - proven)


def test_broken_servers_fail_and_correct_servers_pass(trace: Callable[..., tuple[str, Path]],
                                                      faulty: Callable[..., str], tmp_path: Path) -> None:
    ids = catalog(FILES + EXTRA_FILES)
    new = catalog(FILES)
    address, maildir = trace()
    targets: dict[str, dict[str, str]] = {"trace-ok": {"address": address, "mailbox": f"maildir:{maildir}"}}
    wanted = {(sid, "trace-ok"): TRACE_CORRECT_NOT_PASS.get(sid, "pass") for sid in new}
    for label, (faults, expect) in TRACE.items():
        address, maildir = trace(*faults)
        targets[label] = {"address": address, "mailbox": f"maildir:{maildir}"}
        wanted.update({(sid, label): outcome for sid, outcome in expect.items()})
    for label, (faults, expect) in FAULTY.items():
        maildir = tmp_path / f"faulty-{label}"
        targets[label] = {"address": faulty(*faults, maildir=maildir), "mailbox": f"maildir:{maildir}"}
        wanted.update({(sid, label): outcome for sid, outcome in expect.items()})
    started = time.monotonic()
    run = _run(targets, wanted, ids, tmp_path, *TIMEOUT)
    wrong = mismatches(run, wanted)
    assert not wrong, "\n".join(wrong)
    assert time.monotonic() - started < 240


def test_postfix_deferring_at_end_of_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The 4yz scenario is UNSUPPORTED on the suite's servers (they accept the message); Postfix told to defer
    every message at the end of the data (450 4.3.2) lets it judge, and Postfix keeps nothing it deferred."""
    ids = catalog(FILES)
    monkeypatch.setenv("POSTFIX_EXTRA_MAIN_CF", "smtpd_end_of_data_restrictions = defer")
    with real_server("postfix") as server:
        monkeypatch.delenv("POSTFIX_EXTRA_MAIN_CF")
        targets = {"postfix-defer": {"address": server.address, "mailbox": f"maildir:{server.maildir}"}}
        wanted = {("rfc5321-4.2.5-4yz-after-data-not-delivered", "postfix-defer"): "pass",
                  ("rfc5321-4.2.5-5yz-after-data-not-delivered", "postfix-defer"): "unsupported"}
        run = _run(targets, wanted, ids, tmp_path, "--smtp-timeout", "10")
    wrong = mismatches(run, wanted)
    assert not wrong, "\n".join(wrong)
    codes = run.result("rfc5321-4.2.5-4yz-after-data-not-delivered", "postfix-defer")["codes"]
    assert 450 in codes, codes  # the end of the data was answered "450 4.3.2 … End-of-data rejected"
