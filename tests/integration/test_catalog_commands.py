"""Negative proof for the `commands` scenarios (RFC 5321 §4.1.1–4.1.4, §4.3, Appendix C).

Every rule family is run against servers that break it — the shared faulty server's faults, and a small
scripted server defined here (`_QuirkyServer`) for the faults the faulty server does not have — and against
servers that keep it. All targets go into one run of the suite, so the whole file takes a few seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import scripted
from tests.support import SCENARIOS, SuiteRun, run_suite

FILES = [
    "4.1.1-command-syntax.yaml", "4.1.1.1-ehlo.yaml", "4.1.1.2-mail.yaml", "4.1.1.3-rcpt.yaml",
    "4.1.2-syntax.yaml", "4.1.3-address-literals.yaml", "4.1.4-order.yaml", "4.3.1-replies.yaml",
    "4.3.2-sequencing.yaml", "C-source-routes.yaml",
]
PATHS = [str(SCENARIOS / "rfc5321" / name) for name in FILES]

# ---------------------------------------------------------------------------------------------------
# Quirky: a minimal SMTP server, correct by default, with switchable deviations the faulty server lacks.
# ---------------------------------------------------------------------------------------------------
QUIRKS = {
    "no-trailing-space": "trailing white space before CRLF -> 501",
    "args-ok": "RSET/DATA/QUIT ignore an argument (250/354/221)",
    "unknown-params-ok": "unknown MAIL/RCPT parameters are ignored (250)",
    "ehlo-noarg-503": "EHLO/HELO without argument -> 503",
    "second-ehlo-503": "a second EHLO/HELO -> 503",
    "bad-ehlo-resets": "a refused EHLO still resets the transaction",
    "bad-mail-opens": "a refused MAIL still opens a transaction",
    "nested-mail-drops": "a refused nested MAIL aborts the open transaction",
    "no-source-routes": "paths with a source route -> 501",
    "no-unquote": "quoted local-parts are compared as written",
    "case-keywords": "BODY=8BITMIME recognised in upper case only",
    "case-from": "'FROM:'/'TO:' recognised in upper case only",
    "help-unadvertised": "HELP works (214) but EHLO does not list it",
    "bad-keyword": "EHLO lists 'AUTH=LOGIN'",
    "literal-501": "address literals (EHLO and paths) -> 501",
    "relay-554": "foreign and unknown recipients -> 554",
    "close-long-line": "a command line over 512 octets closes the connection",
    "code-600": "unknown commands -> '600 what?'",
    "ctl-ok": "control characters in paths are accepted",
    "syntax-550": "MAIL syntax errors -> 550",
    "no-ehlo": "EHLO -> 502 (old-style server)",
    "no-helo": "HELO -> 500",
    "header-routing": "a message is also stored for each local address in its To/Cc header fields",
}
DOMAIN = "example.test"
CTL = re.compile(r"[\x00-\x1f\x7f]")


def _unquote(local: str) -> str:
    if len(local) >= 2 and local[0] == local[-1] == '"':
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


class _Quirky(scripted.Session):
    server: _QuirkyServer
    greeting = "220 quirky.example.test ESMTP"
    helo = False

    def has(self, quirk: str) -> bool:
        return quirk in self.f

    def reset(self) -> None:
        self.sender: str | None = None
        self.rcpts: list[str] = []

    def message_name(self) -> str:
        with self.server.lock:
            self.server.stored += 1
            return f"{self.server.stored}.quirky"

    def readline(self, limit: int) -> bytes:
        """As a file's readline(limit): up to and including LF, at most `limit` octets; b"" once closed."""
        while (i := self.buf.find(b"\n", 0, limit)) < 0 and len(self.buf) < limit:
            try:
                self.fill()
            except scripted.Closed:
                break
        end = i + 1 if i >= 0 else min(len(self.buf), limit)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def next_line(self) -> str | None:
        raw = self.readline(4096)
        return raw.decode("latin-1") if raw else None

    def command(self, raw: str) -> str | None:
        if len(raw) > 512:
            if self.has("close-long-line"):
                return scripted.CLOSE
            self.send("500 5.5.2 line too long")
            return None
        line = raw.rstrip("\r\n")
        if line != line.rstrip(" \t") and self.has("no-trailing-space"):
            self.send("501 5.5.2 trailing white space")
            return None
        verb, _, arg = line.rstrip(" \t").partition(" ")
        return self.dispatch(verb, arg)

    def unknown(self, verb: str, arg: str) -> None:
        self.send("600 what?" if self.has("code-600") else "500 5.5.1 command not recognized")

    def cmd_EHLO(self, arg: str) -> None:
        if self.has("no-ehlo"):
            return self.send("502 5.5.1 EHLO not implemented")
        keywords = ["8BITMIME", *(["AUTH=LOGIN"] if self.has("bad-keyword") else [])]
        self.hello(arg, "250-quirky.example.test", *(f"250-{k}" for k in keywords),
                   "250 SIZE 1000000" if self.has("help-unadvertised") else "250 HELP")

    def cmd_HELO(self, arg: str) -> None:
        if self.has("no-helo"):
            return self.send("500 5.5.1 command not recognized")
        self.hello(arg, "250 quirky.example.test")

    def hello(self, arg: str, *ok: str) -> None:
        if not arg or (arg.startswith("[") and self.has("literal-501")):
            if self.has("bad-ehlo-resets"):
                self.reset()
            return self.send("503 5.5.1 say hello properly" if self.has("ehlo-noarg-503") else "501 5.5.4 syntax")
        if self.helo and self.has("second-ehlo-503"):
            return self.send("503 5.5.1 already greeted")
        self.helo = True
        self.reset()
        self.send(*ok)

    def path(self, arg: str, keyword: str) -> tuple[str | None, list[str]]:
        """(mailbox or None if invalid, parameters); the mailbox may be '' for <>."""
        head = arg[: len(keyword)]
        if head != keyword and (self.has("case-from") or head.upper() != keyword):
            return None, []
        match = re.fullmatch(r"<((?:@[^,:>]+(?:,@[^,:>]+)*:)?)([^>]*)>((?: \S+)*)", arg[len(keyword):])
        if not match:
            return None, []
        route, mailbox, params = match.groups()
        if route and self.has("no-source-routes"):
            return None, []
        if CTL.search(mailbox) and not self.has("ctl-ok"):
            return None, []
        if mailbox:
            local, _, domain = mailbox.rpartition("@")
            literal = domain.startswith("[")
            if not local or not domain or ".." in domain or (literal and self.has("literal-501")):
                return None, []
        return mailbox, params.split()

    def params_ok(self, params: list[str]) -> bool:
        for param in params:
            key, _, value = param.partition("=")
            if self.has("unknown-params-ok"):
                continue
            if self.has("case-keywords"):
                if param not in ("BODY=7BIT", "BODY=8BITMIME"):
                    return False
            elif key.upper() != "BODY" or value.upper() not in ("7BIT", "8BITMIME"):
                return False
        return True

    def cmd_MAIL(self, arg: str) -> None:
        if not self.helo:
            return self.send("503 5.5.1 EHLO first")
        if self.sender is not None:
            if self.has("nested-mail-drops"):
                self.reset()
            return self.send("503 5.5.1 nested MAIL")
        mailbox, params = self.path(arg, "FROM:")
        if mailbox is None:
            if self.has("bad-mail-opens"):
                self.sender = "broken"
            return self.send("550 5.1.7 no" if self.has("syntax-550") else "501 5.1.7 bad sender syntax")
        if not self.params_ok(params):
            return self.send("555 5.5.4 unsupported parameter")
        self.sender = mailbox
        self.send("250 2.1.0 ok")

    def cmd_RCPT(self, arg: str) -> None:
        if self.sender is None:
            return self.send("503 5.5.1 MAIL first")
        mailbox, params = self.path(arg, "TO:")
        if not mailbox:
            return self.send("501 5.1.3 bad recipient syntax")
        if not self.params_ok(params):
            return self.send("555 5.5.4 unsupported parameter")
        local, _, domain = mailbox.rpartition("@")
        if not self.has("no-unquote"):
            local = _unquote(local)
        if domain.lower() != DOMAIN or local.lower() not in ("user", "postmaster"):
            return self.send("554 5.7.1 no" if self.has("relay-554") else "550 5.1.1 no such user here")
        self.rcpts.append(mailbox)
        self.send("250 2.1.5 ok")

    def cmd_DATA(self, arg: str) -> None:
        if self.argument_refused(arg):
            return
        if not self.rcpts:
            return self.send("503 5.5.1 no valid recipients")
        self.send("354 go ahead")
        data = b""
        while (line := self.readline(65536)) not in (b".\r\n", b""):
            data += line[1:] if line.startswith(b".") else line
        copies = len(self.rcpts)
        if self.has("header-routing"):
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            copies += len(re.findall(r"^(?:To|Cc):.*@" + re.escape(DOMAIN), head, re.M | re.I))
        if self.server.maildir is not None:
            for _ in range(copies):
                self.store(data)
        self.reset()
        self.send("250 2.0.0 queued")

    def cmd_RSET(self, arg: str) -> str | None:
        return None if self.argument_refused(arg) else super().cmd_RSET(arg)

    def cmd_VRFY(self, arg: str) -> None:
        self.send("252 2.0.0 cannot verify")

    def cmd_EXPN(self, arg: str) -> None:
        self.send("502 5.5.1 not implemented")

    def cmd_HELP(self, arg: str) -> None:
        self.send("214 2.0.0 see RFC 5321")

    def cmd_QUIT(self, arg: str) -> str | None:
        return None if self.argument_refused(arg) else super().cmd_QUIT(arg)

    def argument_refused(self, arg: str) -> bool:
        """RSET, DATA and QUIT take no argument: 501 (unless args-ok)."""
        if arg and not self.has("args-ok"):
            self.send("501 5.5.4 no arguments allowed")
            return True
        return False


class _QuirkyServer(scripted.ScriptedServer):
    def __init__(self, quirks: set[str], maildir: Path | None = None) -> None:
        self.stored = 0
        super().__init__(_Quirky, quirks, maildir, known=QUIRKS)


# ---------------------------------------------------------------------------------------------------
# What each broken server must get. Keys: target label -> (server spec, {scenario id: outcome}).
# ---------------------------------------------------------------------------------------------------
P = "rfc5321-"
FAULTY_EXPECT: dict[str, tuple[str, dict[str, str]]] = {
    "no-sequencing": ("no-sequencing", {
        P + "4.3.2-rcpt-before-mail": "fail", P + "4.3.2-data-before-mail": "fail",
        P + "4.3.2-data-before-rcpt": "fail", P + "4.3.2-nested-mail": "info",  # MAIL clears the buffers (§4.1.1.2)
        P + "4.3.2-data-no-valid-recipients": "fail"}),
    "wrong-codes": ("wrong-codes", {
        P + "4.3.2-unknown-command": "fail", P + "4.3.1-accepted-rcpt-honoured": "fail",
        P + "4.3.2-empty-line": "non-strict", P + "4.1.1-rset-argument": "non-strict",
        P + "4.1.4-ehlo-no-argument": "info", P + "4.1.2-invalid-character-501": "fail"}),
    "no-domain-ehlo": ("no-domain-ehlo", {P + "4.1.1.1-ehlo-domain-first": "non-strict"}),
    "strict-pre-helo": ("strict-pre-helo", {
        P + "4.1.4-noop-before-ehlo": "non-strict", P + "4.1.4-rset-before-ehlo": "non-strict",
        P + "4.1.4-vrfy-before-ehlo": "non-strict", P + "4.1.4-expn-before-ehlo": "non-strict",
        P + "4.1.4-help-before-ehlo": "non-strict"}),
    "no-rset-state": ("no-rset-state", {P + "4.3.2-mail-after-rset": "fail"}),
    "ehlo-no-reset": ("ehlo-no-reset", {
        P + "4.1.4-ehlo-resets-transaction": "fail", P + "4.1.1.1-helo-resets-transaction": "fail"}),
    "data-no-reset": ("data-no-reset", {P + "4.3.2-mail-after-data": "fail"}),
    "no-helo-check": ("no-helo-check", {P + "4.1.4-mail-before-ehlo": "info"}),
    "short-limits": ("short-limits", {P + "4.3.2-command-line-512": "fail"}),
}
QUIRKY_EXPECT: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "q-trailing": (("no-trailing-space",), {
        P + "4.1.1-noop-trailing-space": "non-strict", P + "4.1.1-mail-trailing-space": "non-strict",
        P + "4.1.1-rcpt-trailing-space": "non-strict"}),
    "q-args": (("args-ok",), {
        P + "4.1.1-rset-argument": "non-strict", P + "4.1.1-data-argument": "non-strict",
        P + "4.1.1-quit-argument": "non-strict"}),
    "q-params": (("unknown-params-ok",), {
        P + "4.1.1-mail-unknown-parameter": "non-strict", P + "4.1.1-rcpt-unknown-parameter": "non-strict"}),
    "q-noarg": (("ehlo-noarg-503",), {P + "4.1.4-ehlo-no-argument": "fail", P + "4.1.4-helo-no-argument": "fail"}),
    "q-second": (("second-ehlo-503",), {P + "4.1.4-ehlo-twice": "fail"}),
    "q-bad-ehlo": (("bad-ehlo-resets",), {P + "4.1.4-rejected-ehlo-keeps-state": "fail"}),
    "q-bad-mail": (("bad-mail-opens",), {P + "4.1.4-bad-mail-keeps-state": "fail"}),
    "q-nested": (("nested-mail-drops",), {P + "4.1.4-nested-mail-keeps-transaction": "fail"}),
    "q-routes": (("no-source-routes",), {
        P + "4.1.1.3-source-route-stripped": "fail", P + "c-rcpt-two-hop-route": "fail",
        P + "c-mail-source-route": "fail"}),
    "q-unquote": (("no-unquote",), {
        P + "4.1.2-quoted-postmaster": "fail", P + "4.1.2-quoted-pair-postmaster": "fail"}),
    "q-case-kw": (("case-keywords",), {P + "4.1.1.1-keywords-case-insensitive": "fail"}),
    "q-case-from": (("case-from",), {P + "4.1.1.2-from-any-case": "fail"}),
    "q-help": (("help-unadvertised",), {P + "4.1.1.1-help-advertised": "fail"}),
    "q-keyword": (("bad-keyword",), {P + "4.1.1.1-ehlo-keyword-syntax": "fail"}),
    "q-literal": (("literal-501",), {
        P + "4.1.3-ehlo-ipv4-literal": "non-strict", P + "4.1.3-ehlo-ipv6-literal": "non-strict",
        P + "4.1.3-mail-ipv4-literal": "non-strict", P + "4.1.3-mail-ipv6-literal": "non-strict",
        P + "4.1.4-ehlo-mismatch-not-refused": "fail"}),
    "q-554": (("relay-554",), {
        P + "4.3.1-rcpt-foreign-reply-code": "non-strict", P + "4.3.1-rcpt-unknown-user-reply-code": "non-strict"}),
    # closing on a line over the limit is a defence §7.8 permits: NON-STRICT at most (§3.8)
    "q-long": (("close-long-line",), {P + "4.3.2-command-line-too-long": "non-strict"}),
    "q-600": (("code-600",), {P + "4.3.2-reply-code-range": "fail", P + "4.3.2-unknown-command": "non-strict"}),
    "q-ctl": (("ctl-ok",), {P + "4.1.2-invalid-character-501": "fail"}),
    "q-550": (("syntax-550",), {
        P + "4.1.4-mail-syntax-501": "fail", P + "4.1.1.2-malformed-domain": "fail",
        P + "4.1.2-invalid-character-501": "fail"}),
    "q-no-ehlo": (("no-ehlo",), {P + "4.1.1.1-ehlo-accepted": "fail"}),
    "q-no-helo": (("no-helo",), {P + "4.1.1.1-helo-accepted": "fail", P + "4.1.1.1-helo-transaction": "fail"}),
    "q-headers": (("header-routing",), {P + "c-routing-from-envelope": "fail"}),
}
MAILDIR_TARGETS = {"q-headers"}  # with faulty-correct and quirky-correct: delivery checks need a mailbox
DELIVERY = {P + "c-routing-from-envelope"}  # UNSUPPORTED on every target without a mailbox
# The shared faulty server's correct mode answers QUIT with an argument 221 (its README: "an argument is
# ignored") and refuses a trailing tab after RCPT (501): two SHOULD deviations of its own, so these two are
# checked on the quirky server only.
FAULTY_OWN_DEVIATIONS = {P + "4.1.1-quit-argument", P + "4.1.1-rcpt-trailing-space"}


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SuiteRun]:
    """One suite run with every target (a targets file): correct ones and broken ones."""
    from tests.servers.faulty import start_in_thread

    tmp = tmp_path_factory.mktemp("commands")
    stops = []
    servers = scripted.Servers()
    entries: list[dict[str, str]] = []

    def faulty(label: str, *faults: str, maildir: bool = False) -> None:
        box = tmp / f"{label}-maildir" if maildir else None
        host, port, stop = start_in_thread(list(faults), port=0, maildir=box)
        stops.append(stop)
        entries.append({"label": label, "address": f"{host}:{port}", **({"maildir": str(box)} if box else {})})

    def quirky(label: str, *quirks: str, maildir: bool = False) -> None:
        box = tmp / f"{label}-maildir" if maildir else None
        server = servers.start(_QuirkyServer(set(quirks), box))
        entries.append({"label": label, "address": server.address, **({"maildir": str(box)} if box else {})})

    try:
        faulty("faulty-correct", maildir=True)
        quirky("quirky-correct", maildir=True)
        for label, (fault, _) in FAULTY_EXPECT.items():
            faulty(label, fault)
        for label, (quirks, _) in QUIRKY_EXPECT.items():
            quirky(label, *quirks, maildir=label in MAILDIR_TARGETS)
        targets_file = tmp / "targets.yaml"
        targets_file.write_text(json.dumps({"targets": entries}, indent=1))  # JSON is YAML
        yield run_suite("--smtp-targets", str(targets_file), "--smtp-timeout", "3", "--smtp-concurrency", "32",
                        paths=PATHS, tmp=tmp)
    finally:
        for stop in stops:
            stop()
        servers.stop()


def levels() -> dict[str, str]:
    """scenario id -> level, read from the files (INFO-level scenarios are INFO on every server)."""
    out = {}
    for path in PATHS:
        for doc in Path(path).read_text(encoding="utf-8").split("\n---\n"):
            sid = re.search(r"^id: (\S+)", doc, re.M)
            level = re.search(r"^level: (.+)$", doc, re.M)
            assert sid and level
            out[sid.group(1)] = level.group(1).strip()
    return out


def test_correct_servers_pass(suite_run: SuiteRun) -> None:
    info_level = {sid for sid, level in levels().items() if level == "INFO"}
    for label, skip in (("quirky-correct", set()), ("faulty-correct", FAULTY_OWN_DEVIATIONS)):
        outcomes = suite_run.outcomes(label)
        assert len(outcomes) == len(levels()), label
        bad = {sid: o for sid, o in outcomes.items() if sid not in info_level | skip and o != "pass"}
        assert not bad, f"{label}: {bad}"
        assert all(outcomes[sid] == "info" for sid in info_level), label


def test_delivery_checks_need_a_mailbox(suite_run: SuiteRun) -> None:
    """Without a mailbox the delivery scenario is UNSUPPORTED, never a verdict on the server."""
    outcomes = suite_run.outcomes("no-sequencing")
    assert {sid: outcomes[sid] for sid in DELIVERY} == dict.fromkeys(DELIVERY, "unsupported")


@pytest.mark.parametrize("label", list(FAULTY_EXPECT))
def test_faulty_server_faults_are_caught(suite_run: SuiteRun, label: str) -> None:
    outcomes = suite_run.outcomes(label)
    expected = FAULTY_EXPECT[label][1]
    got = {sid: outcomes.get(sid) for sid in expected}
    assert got == expected, label


@pytest.mark.parametrize("label", list(QUIRKY_EXPECT))
def test_quirky_server_deviations_are_caught(suite_run: SuiteRun, label: str) -> None:
    outcomes = suite_run.outcomes(label)
    expected = QUIRKY_EXPECT[label][1]
    got = {sid: outcomes.get(sid) for sid in expected}
    assert got == expected, label


def test_info_scenarios_record_the_branch(suite_run: SuiteRun) -> None:
    """MAIL before EHLO is INFO either way; the recorded branch tells which way the server went."""
    refused = suite_run.result(P + "4.1.4-mail-before-ehlo", "faulty-correct")
    accepted = suite_run.result(P + "4.1.4-mail-before-ehlo", "no-helo-check")
    assert refused["outcome"] == accepted["outcome"] == "info"
    assert "refused" in str(refused["branch"])
    assert "accepted" in str(accepted["branch"])

