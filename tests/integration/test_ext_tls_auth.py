"""The tls-auth area: STARTTLS (RFC 3207), AUTH (RFC 4954, PLAIN 4616, LOGIN, CRAM-MD5 2195), implicit TLS
(RFC 8314) and the security cases (STARTTLS injection, AUTH before TLS, wrong credentials, open relay).

Two kinds of proof, each in as few suite runs as possible:

* Real servers with TLS and AUTH switched on (the catalog test runs them with their mailbox, nothing else):
  Exim and smtp-server as they are, postfix-tls and aiosmtpd-auth (scripts/servers/), with
  --smtp-auth user@example.test:password; aiosmtpd-auth again in implicit-TLS mode with --smtp-tls implicit.
  Every scenario's outcome is asserted, genuine deviations included (they are explained where asserted).
* Negative proof: every rule family FAILs (or NON-STRICT / INFO where that is its grade) against a server that
  breaks it, and PASSes against one that keeps it: the shared faulty server (starttls, starttls-inject) and
  `_Mini`, a small STARTTLS+AUTH server defined here, correct by default, with switchable faults.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import scripted
from tests.support import SCENARIOS, SuiteRun, real_server, run_suite

CREDENTIALS = ("--smtp-auth", "user@example.test:password")
USER, PASSWORD = "user@example.test", "password"
STARTTLS_FILES = [SCENARIOS / "rfc3207", SCENARIOS / "security" / "starttls-injection.yaml"]
AUTH_FILES = [SCENARIOS / "rfc4954", SCENARIOS / "security" / "auth-before-tls.yaml",
              SCENARIOS / "security" / "auth-credentials.yaml"]
RELAY_FILES = [SCENARIOS / "security" / "relay.yaml"]
IMPLICIT_FILES = [SCENARIOS / "rfc8314"]
ALL_FILES = STARTTLS_FILES + AUTH_FILES + RELAY_FILES + IMPLICIT_FILES

STARTTLS_IDS = [
    "rfc3207-4-starttls-handshake", "rfc3207-4-starttls-argument", "rfc3207-4-local-delivery-without-tls",
    "rfc3207-4.2-ehlo-required-again", "rfc3207-4.2-transaction-forgotten", "rfc3207-4.2-no-starttls-after-tls",
    "rfc3207-4.2-starttls-inside-tls", "security-starttls-injection-noop", "security-starttls-injection-mail",
]
AUTH_IDS = [
    "rfc4954-4-plain-initial-response", "rfc4954-4-plain-empty-challenge", "rfc4954-4-login-challenges",
    "rfc4954-4-auth-twice", "rfc4954-4-auth-in-transaction", "rfc4954-4-cancel", "rfc4954-4-bad-base64-response",
    "rfc4954-4-misplaced-padding", "rfc4954-4-unknown-mechanism", "rfc4954-4-initial-response-server-first",
    "rfc4954-5-auth-param-unauthenticated", "rfc4954-6-advertised-mechanism-usable",
    "rfc4954-8-lowercase-auth-plain", "rfc4954-9-two-failures-keep-session", "rfc4616-2-long-fields",
    "rfc4954-4-unknown-mechanism-enhanced", "rfc4954-4-initial-response-server-first-enhanced",
    "rfc4954-6-enhanced-code-535",
    "rfc2195-2-cram-md5", "security-auth-plaintext-offered-before-tls", "security-auth-plain-accepted-before-tls",
    "security-auth-login-accepted-before-tls", "security-auth-unknown-user", "security-auth-wrong-password",
]
RELAY_IDS = ["security-relay-foreign-rcpt", "security-relay-source-route"]
IMPLICIT_IDS = ["rfc8314-3.3-transaction-over-tls", "rfc8314-3.3-quit-over-tls"]
ALL_IDS = STARTTLS_IDS + AUTH_IDS + RELAY_IDS + IMPLICIT_IDS


def _run(targets: dict[str, str], *extra: str, files: list[Path] | None = None) -> SuiteRun:
    args: list[str] = []
    for label, address in targets.items():
        args += ["--smtp-target", f"{label}={address}"]
    # the servers here stand for MX servers: RFC 3207's publicly-referenced rule and the relay checks apply
    run = run_suite(*args, "--smtp-timeout", "3", "--smtp-profile", "mx", *extra,
                    paths=[str(p) for p in files or ALL_FILES], timeout=300)
    assert run.document is not None, run.stdout[-3000:] + run.stderr[-2000:]
    return run


def _outcomes(run: SuiteRun, label: str) -> dict[str, str]:
    """Outcomes of this area's scenarios (ALL_IDS); the files also hold the scenarios of the coverage push
    (SASLprep, AUTH/TLS-required policies, the Received field after AUTH, ...), which
    tests/integration/test_ext_coverage.py proves."""
    return {i: o for i, o in run.outcomes(label).items() if i in ALL_IDS}


def _check(run: SuiteRun, label: str, expected: dict[str, str], default: str | None = "pass") -> None:
    """Every listed scenario has its outcome; with a default, every other one of ALL_IDS that ran too."""
    got = _outcomes(run, label)
    want = dict(expected)
    if default is not None:
        # without --smtp-tls implicit the RFC 8314 scenarios are UNSUPPORTED (needs: [implicit-tls])
        want = {i: expected.get(i, "unsupported" if i in IMPLICIT_IDS else default) for i in ALL_IDS if i in got}
        want |= expected
    wrong = {i: (o, got.get(i), run.result(i, label)["message"] if i in got else "not run")
             for i, o in want.items() if got.get(i) != o}
    assert not wrong, f"{label}: id -> (expected, actual, message): {wrong}"


# ---------------------------------------------------------------------------------------------------
# _Mini: a small SMTP server with STARTTLS, implicit TLS and AUTH PLAIN/LOGIN/CRAM-MD5, correct by default.
# ---------------------------------------------------------------------------------------------------
FAULTS = {
    # STARTTLS (RFC 3207)
    "require-tls": "MAIL before STARTTLS -> 530 5.7.0",
    "handshake-fails": "STARTTLS answered 220, then the connection is closed instead of a handshake",
    "starttls-arg-ok": "STARTTLS with an argument starts TLS (220)",
    "keep-ehlo": "the pre-TLS EHLO survives the handshake",
    "keep-transaction": "the pre-TLS transaction (and EHLO) survive the handshake",
    "starttls-after-tls": "EHLO over TLS still lists STARTTLS",
    "starttls-inside-tls": "STARTTLS inside TLS answered 220 (and the connection then dropped)",
    "inject": "plaintext pipelined after STARTTLS is executed after the handshake",
    # AUTH (RFC 4954, 4616, 2195)
    "auth-plaintext": "AUTH PLAIN/LOGIN offered and accepted before TLS",
    "advertise-plaintext": "AUTH offered before TLS, but refused there with 538",
    "auth-twice": "a second AUTH after a successful one is processed",
    "auth-in-transaction": "AUTH inside a mail transaction is processed",
    "no-cancel": "'*' is taken as a (failed) response: 535",
    "lenient-base64": "characters outside the BASE64 alphabet and inner padding are ignored",
    "chatty-challenge": "challenges carry plain text ('334 Username:', '334 Go ahead')",
    "case-sensitive": "mechanism names compared case-sensitively",
    "no-auth-param": "MAIL FROM ... AUTH=<> -> 555",
    "unknown-334": "an unknown mechanism starts an exchange (334)",
    "cram-initial-ok": "an initial response with CRAM-MD5 is ignored (challenge sent anyway)",
    "drop-after-failure": "the connection is closed after the first failed AUTH",
    "short-auth-line": "AUTH responses longer than 512 octets -> 500",
    "no-enhanced-auth": "replies to AUTH carry no enhanced status code (ENHANCEDSTATUSCODES advertised)",
    "any-password": "every password is accepted",
    "no-plain": "PLAIN is not implemented (LOGIN and CRAM-MD5 only)",
    # relay, session
    "open-relay": "recipients in any domain are accepted",
    "no-quit-close": "QUIT answered 221, but the connection stays open",
}
HOST = "mini.example.test"
ENHANCED = re.compile(r"^(\d{3}[ -])\d\.\d{1,3}\.\d{1,3} ")


def _b64decode(text: str, lenient: bool) -> bytes | None:
    try:
        if lenient:
            return base64.b64decode("".join(c for c in text if c.isalnum() or c in "+/=").split("=")[0] + "==")
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


class _Mini(scripted.Session):
    server: _MiniServer
    greeting = f"220 {HOST} ESMTP mini"
    unrecognized = "500 5.5.2 unknown command"
    line_limit = 512
    line_cap = 65536
    too_long = "500 5.5.6 line too long"
    strip_arg = True
    close_abruptly = True

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.ehlo = False
        self.authed = False
        self.in_auth = False

    # --- I/O ---
    def send(self, *lines: str) -> None:
        if self.in_auth and "no-enhanced-auth" in self.f:
            lines = tuple(ENHANCED.sub(r"\1", line) for line in lines)
        super().send(*lines)

    # --- session ---
    def run(self) -> None:
        if self.server.implicit:
            self.start_tls()
        super().run()

    def auth_offered(self) -> bool:
        return self.server.auth and (self.tls or bool({"auth-plaintext", "advertise-plaintext"} & self.f))

    def cmd_EHLO(self, arg: str) -> None:
        if not arg:
            return self.send("501 5.5.4 EHLO needs a domain")
        self.ehlo = True
        self.reset()
        lines = [HOST, "PIPELINING", "ENHANCEDSTATUSCODES"]
        if self.server.starttls and (not self.tls or "starttls-after-tls" in self.f):
            lines.append("STARTTLS")
        if self.auth_offered():
            lines.append("AUTH " + " ".join(m for m in ("PLAIN", "LOGIN", "CRAM-MD5")
                                            if not (m == "PLAIN" and "no-plain" in self.f)))
        lines.append("HELP")
        self.send(*[f"250-{x}" for x in lines[:-1]], f"250 {lines[-1]}")

    def cmd_STARTTLS(self, arg: str) -> str | None:
        if not self.server.starttls or (self.tls and "starttls-inside-tls" not in self.f):
            self.send("503 5.5.1 TLS already active" if self.tls else "502 5.5.1 not implemented")
            return None
        if arg and "starttls-arg-ok" not in self.f:
            self.send("501 5.5.4 no parameters allowed")
            return None
        if not self.ehlo:
            self.send("503 5.5.1 EHLO first")
            return None
        self.send("220 2.0.0 ready to start TLS")
        if "handshake-fails" in self.f or self.tls:
            return scripted.CLOSE
        if "inject" not in self.f:
            self.buf = b""
        self.start_tls()
        if "keep-transaction" not in self.f:
            self.reset()
            if "keep-ehlo" not in self.f:
                self.ehlo = False
        return None

    def cmd_MAIL(self, arg: str) -> None:
        if "require-tls" in self.f and not self.tls:
            return self.send("530 5.7.0 Must issue a STARTTLS command first")
        if not self.ehlo:
            return self.send("503 5.5.1 EHLO first")
        if self.mail is not None:
            return self.send("503 5.5.1 nested MAIL")
        if not arg.upper().startswith("FROM:<") or ">" not in arg:
            return self.send("501 5.5.4 syntax: MAIL FROM:<path>")
        params = arg.split(">", 1)[1].split()
        for param in params:
            if param.upper().startswith("AUTH=") and "no-auth-param" not in self.f:
                continue
            return self.send("555 5.5.4 unknown parameter")
        self.mail = arg
        self.send("250 2.1.0 ok")

    def cmd_RCPT(self, arg: str) -> None:
        if self.mail is None:
            return self.send("503 5.5.1 need MAIL")
        if not arg.upper().startswith("TO:<") or ">" not in arg:
            return self.send("501 5.5.4 syntax: RCPT TO:<path>")
        address = arg[4:arg.index(">")].rsplit(":", 1)[-1]
        if address.lower().endswith("@example.test") or "open-relay" in self.f:
            self.rcpts.append(address)
            return self.send("250 2.1.5 ok")
        self.send("550 5.7.1 relaying denied")

    def cmd_DATA(self, arg: str) -> str | None:
        if not self.rcpts:
            self.send("503 5.5.1 need RCPT")
            return None
        self.send("354 go ahead")
        if self.data_lines() is None:
            return scripted.CLOSE
        self.reset()
        self.send("250 2.0.0 accepted")
        return None

    def cmd_QUIT(self, arg: str) -> str | None:
        self.send("221 2.0.0 bye")
        return None if "no-quit-close" in self.f else scripted.CLOSE

    # --- AUTH ---
    def cmd_AUTH(self, arg: str) -> str | None:
        self.in_auth = True
        try:
            return self._auth(arg)
        finally:
            self.in_auth = False

    def _auth(self, arg: str) -> str | None:
        if not self.server.auth:
            self.send("502 5.5.1 not implemented")
            return None
        if not self.tls and "auth-plaintext" not in self.f:
            self.send("538 5.7.11 Encryption required for requested authentication mechanism")
            return None
        if self.authed and "auth-twice" not in self.f:
            self.send("503 5.5.1 already authenticated")
            return None
        if self.mail is not None and "auth-in-transaction" not in self.f:
            self.send("503 5.5.1 AUTH not permitted in a mail transaction")
            return None
        words = arg.split()
        if not words:
            self.send("501 5.5.4 syntax: AUTH mechanism")
            return None
        mech = words[0] if "case-sensitive" in self.f else words[0].upper()
        initial = words[1] if len(words) > 1 else None
        ok: bool | None
        if mech == "PLAIN" and "no-plain" not in self.f:
            ok = self._plain(initial)
        elif mech == "LOGIN":
            ok = self._login(initial)
        elif mech == "CRAM-MD5":
            ok = self._cram(initial)
        elif "unknown-334" in self.f:
            self.send("334 ")
            self.read_limited(self.line_limit)
            ok = False
        else:
            self.send("504 5.5.4 unrecognized authentication type")
            return None
        if ok is None:  # already answered (501/500)
            return None
        if ok:
            self.authed = True
            self.send("235 2.7.0 authentication successful")
            return None
        self.send("535 5.7.8 authentication credentials invalid")
        return scripted.CLOSE if "drop-after-failure" in self.f else None

    def _response(self, challenge: str) -> bytes | None:
        """Send a 334 challenge (BASE64 of challenge, or plain text with chatty-challenge); decode the answer."""
        chatty = "chatty-challenge" in self.f
        text = (challenge or "Go ahead") if chatty else base64.b64encode(challenge.encode()).decode()
        self.send(f"334 {text}")
        line = self.read_limited(512 if "short-auth-line" in self.f else 12288)
        if line is None:
            return None
        if line == scripted.TOO_LONG:
            self.send("500 5.5.6 authentication line too long")
            return None
        if line == "*" and "no-cancel" not in self.f:
            self.send("501 5.7.0 authentication cancelled")
            return None
        return self._decode(line)

    def _decode(self, text: str) -> bytes | None:
        decoded = _b64decode(text, "lenient-base64" in self.f)
        if decoded is None and "no-cancel" in self.f and text == "*":
            return b""
        if decoded is None:
            self.send("501 5.5.2 cannot decode BASE64")
        return decoded

    def _verify(self, user: bytes, password: bytes) -> bool:
        if "any-password" in self.f:
            return bool(user)
        return user == USER.encode() and password == PASSWORD.encode()

    def _plain(self, initial: str | None) -> bool | None:
        data = self._response("") if initial is None else self._decode(initial)
        if data is None:
            return None
        parts = data.split(b"\0")
        return len(parts) == 3 and self._verify(parts[1], parts[2])

    def _login(self, initial: str | None) -> bool | None:
        user = self._response("Username:") if initial is None else self._decode(initial)
        if user is None:
            return None
        password = self._response("Password:")
        if password is None:
            return None
        return self._verify(user, password)

    def _cram(self, initial: str | None) -> bool | None:
        if initial is not None and "cram-initial-ok" not in self.f:
            self.send("501 5.7.0 CRAM-MD5 takes no initial response")
            return None
        challenge = f"<{int.from_bytes(os.urandom(4), 'big')}.1@{HOST}>"
        data = self._response(challenge)
        if data is None:
            return None
        user, _, digest = data.decode("utf-8", "replace").rpartition(" ")
        if "any-password" in self.f:
            return bool(user)
        expected = hmac.new(PASSWORD.encode(), challenge.encode(), hashlib.md5).hexdigest()
        return user == USER and hmac.compare_digest(digest, expected)


class _MiniServer(scripted.ScriptedServer):
    def __init__(self, faults: tuple[str, ...], context: ssl.SSLContext, starttls: bool, auth: bool,
                 implicit: bool) -> None:
        self.starttls, self.auth, self.implicit = starttls, auth, implicit
        super().__init__(_Mini, faults, known=FAULTS, context=context)


@pytest.fixture(scope="module")
def tls_context() -> Iterator[ssl.SSLContext]:
    with scripted.certificate(HOST) as (cert, key):
        yield scripted.server_context(cert, key)


@pytest.fixture
def mini(tls_context: ssl.SSLContext) -> Iterator[Callable[..., str]]:
    """mini("fault", ..., starttls=True, auth=True, implicit=False) -> "127.0.0.1:PORT"."""
    with scripted.Servers() as servers:
        def start(*faults: str, starttls: bool = True, auth: bool = True, implicit: bool = False) -> str:
            return servers.start(_MiniServer(faults, tls_context, starttls and not implicit, auth, implicit)).address

        yield start


# ---------------------------------------------------------------------------------------------------
# Real servers with TLS and AUTH
# ---------------------------------------------------------------------------------------------------
def test_real_servers_with_tls_and_auth() -> None:
    """Exim, smtp-server, postfix-tls, aiosmtpd-auth: STARTTLS and injection pass; AUTH with credentials."""
    with contextlib.ExitStack() as stack:
        targets = {name: stack.enter_context(real_server(name)).address
                   for name in ("exim", "smtp-server", "postfix-tls", "aiosmtpd-auth")}
        run = _run(targets, *CREDENTIALS)
    no_auth = dict.fromkeys(AUTH_IDS, "unsupported")
    # Neither smtp-server nor aiosmtpd advertises ENHANCEDSTATUSCODES.
    no_enhanced = dict.fromkeys([i for i in AUTH_IDS if i.endswith("-enhanced") or "enhanced-code" in i],
                                "unsupported")
    _check(run, "exim", no_auth)
    _check(run, "postfix-tls", no_auth | {
        # Postfix does not require EHLO before MAIL at all (RFC 5321 §4.1.4 leaves that to the client), so the
        # EHLO reset cannot be seen this way; rfc3207-4.2-transaction-forgotten shows the reset instead.
        "rfc3207-4.2-ehlo-required-again": "info",
    })
    _check(run, "smtp-server", no_enhanced | {
        # Genuine: the library's AUTH handler ignores the transaction state (535 to bogus credentials).
        "rfc4954-4-auth-in-transaction": "fail",
        # Genuine SHOULD deviations: 'AUTH PLAIN LOGIN' advertised before STARTTLS, refused there with 538.
        "rfc4954-6-advertised-mechanism-usable": "non-strict",
        "security-auth-plaintext-offered-before-tls": "non-strict",
        # This configuration offers PLAIN and LOGIN only: nothing to check for CRAM-MD5.
        "rfc2195-2-cram-md5": "info", "rfc4954-4-initial-response-server-first": "info",
    })
    _check(run, "aiosmtpd-auth", no_enhanced | {
        # Genuine aiosmtpd 1.4.6 deviations: STARTTLS is not refused inside TLS (220, TLS inside TLS);
        # AUTH runs inside a transaction; AUTH=<> on MAIL -> 555; 'auth plain' -> 504 (case-sensitive); its
        # reader takes lines of at most 1001 octets, so the 1024-octet PLAIN response with 255-octet fields
        # gets '500 Error: (ValueError) Separator is found, but chunk is longer than limit'.
        "rfc3207-4.2-starttls-inside-tls": "fail",
        "rfc4954-4-auth-in-transaction": "fail",
        "rfc4954-5-auth-param-unauthenticated": "fail",
        "rfc4954-8-lowercase-auth-plain": "fail",
        "rfc4616-2-long-fields": "fail",
    })
    for label in targets:
        assert run.outcomes(label)["security-starttls-injection-noop"] == "pass"


def test_implicit_tls(monkeypatch: pytest.MonkeyPatch, faulty: Callable[..., str],
                      mini: Callable[..., str]) -> None:
    """RFC 8314 with --smtp-tls implicit: aiosmtpd-auth on implicit TLS passes; a session broken inside TLS
    fails; a plaintext server where implicit TLS is expected FAILs (its handshake is broken, RFC 8314 §3.3)."""
    monkeypatch.setenv("AIOSMTPD_AUTH_TLS", "implicit")
    with real_server("aiosmtpd-auth") as server:
        run = _run({"aiosmtpd-465": server.address, "broken-465": mini("no-quit-close", implicit=True),
                    "plaintext": faulty()}, "--smtp-tls", "implicit", files=IMPLICIT_FILES)
    _check(run, "aiosmtpd-465", dict.fromkeys(IMPLICIT_IDS, "pass"), default=None)
    _check(run, "broken-465", {"rfc8314-3.3-transaction-over-tls": "pass", "rfc8314-3.3-quit-over-tls": "fail"},
           default=None)
    _check(run, "plaintext", dict.fromkeys(IMPLICIT_IDS, "fail"), default=None)
    assert "implicit TLS failed" in run.result(IMPLICIT_IDS[0], "plaintext")["message"]


# ---------------------------------------------------------------------------------------------------
# Negative proof
# ---------------------------------------------------------------------------------------------------
def test_correct_servers_pass(mini: Callable[..., str], faulty: Callable[..., str]) -> None:
    """The correct mini server passes everything (with credentials); without STARTTLS/AUTH all is UNSUPPORTED."""
    run = _run({"mini": mini(), "faulty-starttls": faulty("starttls"), "faulty": faulty()}, *CREDENTIALS)
    _check(run, "mini", {})
    _check(run, "faulty-starttls", dict.fromkeys(AUTH_IDS, "unsupported"))
    _check(run, "faulty", dict.fromkeys(STARTTLS_IDS + AUTH_IDS, "unsupported"))


def test_starttls_family_fails(mini: Callable[..., str], faulty: Callable[..., str]) -> None:
    targets = {
        "inject": faulty("starttls-inject"),
        "mini-inject": mini("inject"),
        "require-tls": mini("require-tls"),
        "handshake-fails": mini("handshake-fails"),
        "arg-ok": mini("starttls-arg-ok"),
        "keep-ehlo": mini("keep-ehlo"),
        "keep-transaction": mini("keep-transaction"),
        "after-tls": mini("starttls-after-tls"),
        "inside-tls": mini("starttls-inside-tls"),
    }
    run = _run(targets, files=STARTTLS_FILES)
    expect = {
        "inject": {"security-starttls-injection-noop": "fail", "security-starttls-injection-mail": "fail"},
        "mini-inject": {"security-starttls-injection-noop": "fail", "security-starttls-injection-mail": "fail"},
        # MAIL before TLS is refused with 530: neither the EHLO check nor the transaction check can be made.
        "require-tls": {"rfc3207-4-local-delivery-without-tls": "fail", "rfc3207-4.2-ehlo-required-again": "info",
                        "rfc3207-4.2-transaction-forgotten": "info"},
        "handshake-fails": dict.fromkeys(["rfc3207-4-starttls-handshake", "rfc3207-4.2-ehlo-required-again",
                                          "rfc3207-4.2-transaction-forgotten", "rfc3207-4.2-no-starttls-after-tls",
                                          "rfc3207-4.2-starttls-inside-tls", "security-starttls-injection-noop",
                                          "security-starttls-injection-mail"], "fail"),
        "arg-ok": {"rfc3207-4-starttls-argument": "fail"},
        "keep-ehlo": {"rfc3207-4.2-ehlo-required-again": "fail"},
        "keep-transaction": {"rfc3207-4.2-ehlo-required-again": "fail", "rfc3207-4.2-transaction-forgotten": "fail",
                             "security-starttls-injection-mail": "pass"},
        "after-tls": {"rfc3207-4.2-no-starttls-after-tls": "fail"},
        "inside-tls": {"rfc3207-4.2-starttls-inside-tls": "fail"},
    }
    for label, outcomes in expect.items():
        got = _outcomes(run, label)
        unexpected = {i: o for i, o in got.items() if o != "pass" and i not in outcomes}
        assert not unexpected, f"{label}: {unexpected}"
        _check(run, label, outcomes, default=None)


def test_auth_family_fails(mini: Callable[..., str]) -> None:
    cases = {
        "auth-plaintext": {"security-auth-plaintext-offered-before-tls": "non-strict",
                           "security-auth-plain-accepted-before-tls": "non-strict",
                           "security-auth-login-accepted-before-tls": "non-strict"},
        "advertise-plaintext": {"security-auth-plaintext-offered-before-tls": "non-strict",
                                "rfc4954-6-advertised-mechanism-usable": "non-strict"},
        "auth-twice": {"rfc4954-4-auth-twice": "fail"},
        "auth-in-transaction": {"rfc4954-4-auth-in-transaction": "fail"},
        "no-cancel": {"rfc4954-4-cancel": "fail"},
        "lenient-base64": {"rfc4954-4-bad-base64-response": "fail", "rfc4954-4-misplaced-padding": "fail"},
        "chatty-challenge": {"rfc4954-4-plain-empty-challenge": "fail", "rfc4954-4-login-challenges": "fail",
                             "rfc2195-2-cram-md5": "fail"},
        "case-sensitive": {"rfc4954-8-lowercase-auth-plain": "fail"},
        "no-auth-param": {"rfc4954-5-auth-param-unauthenticated": "fail"},
        "unknown-334": {"rfc4954-4-unknown-mechanism": "fail", "rfc4954-4-unknown-mechanism-enhanced": "info"},
        "cram-initial-ok": {"rfc4954-4-initial-response-server-first": "fail",
                            "rfc4954-4-initial-response-server-first-enhanced": "info"},
        "drop-after-failure": {"rfc4954-9-two-failures-keep-session": "non-strict"},
        "short-auth-line": {"rfc4616-2-long-fields": "fail"},
        "no-enhanced-auth": {"rfc4954-4-unknown-mechanism-enhanced": "non-strict",
                             "rfc4954-4-initial-response-server-first-enhanced": "non-strict",
                             "rfc4954-6-enhanced-code-535": "non-strict"},
        # 235 to invalid credentials: FAIL under the mx profile these runs declare (RFC 4954: 535), NON-STRICT
        # without a profile, INFO for a catcher (tests/integration/test_policy_verdicts.py)
        "any-password": {"security-auth-unknown-user": "fail", "security-auth-wrong-password": "fail",
                         "rfc4954-9-two-failures-keep-session": "info", "rfc4954-6-enhanced-code-535": "info"},
        # PLAIN is the mechanism RFC 4954 §4 makes mandatory over TLS, and the other checks run through it:
        # where they need a PLAIN exchange, its 504 fails them too.
        "no-plain": {"rfc4954-4-plain-initial-response": "fail", "rfc4954-4-plain-empty-challenge": "fail",
                     "rfc4954-8-lowercase-auth-plain": "fail", "rfc4954-4-auth-twice": "fail",
                     "rfc4954-4-cancel": "fail", "rfc4954-4-bad-base64-response": "fail",
                     "rfc4954-4-misplaced-padding": "fail", "rfc4616-2-long-fields": "fail",
                     "security-auth-unknown-user": "non-strict", "rfc4954-6-enhanced-code-535": "info"},
    }
    run = _run({fault: mini(fault) for fault in cases}, *CREDENTIALS, files=AUTH_FILES)
    for fault, outcomes in cases.items():
        got = _outcomes(run, fault)
        unexpected = {i: (o, run.result(i, fault)["message"]) for i, o in got.items()
                      if o != "pass" and i not in outcomes}
        assert not unexpected, f"{fault}: {unexpected}"
        _check(run, fault, outcomes, default=None)


def test_relay_family(mini: Callable[..., str], faulty: Callable[..., str]) -> None:
    """Refusing foreign recipients passes; accepting them is INFO (RFC 5321 §3.6.1: MAY decline)."""
    run = _run({"open": mini("open-relay"), "closed": mini(), "faulty": faulty()}, files=RELAY_FILES)
    _check(run, "open", dict.fromkeys(RELAY_IDS, "info"), default=None)
    _check(run, "closed", dict.fromkeys(RELAY_IDS, "pass"), default=None)
    _check(run, "faulty", dict.fromkeys(RELAY_IDS, "pass"), default=None)
