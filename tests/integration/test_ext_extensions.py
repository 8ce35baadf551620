"""The `extensions` area: PIPELINING (RFC 2920), SIZE (1870), 8BITMIME (6152), SMTPUTF8 (6531), CHUNKING and
BINARYMIME (3030), DSN (3461), ENHANCEDSTATUSCODES (2034) and SMTP smuggling (scenarios/security/smuggling-*).

Three kinds of proof, each in as few suite runs as possible:

* Negative proof (one suite run): every rule family FAILs (NON-STRICT for a SHOULD, INFO where the RFC leaves
  the branch open) against a server that breaks it, and PASSes against one that keeps it. The broken
  servers are tests/servers/faulty.py (pipelining-drop, size-not-enforced, no-enhanced, enhanced-mismatch,
  lf-ends-data) and `_Ext`, a small server defined here that offers every extension of the area, correct by
  default, with switchable faults for what faulty.py does not have (BDAT, DSN, SMTPUTF8, BINARYMIME,
  8-bit storage, any line end in DATA). Where a scenario reads the stored mail back, `_Ext` writes a Maildir
  that the targets file names as the target's mailbox.
* Postfix 3.7 and the <LF>.<LF> smuggling finding: the default configuration shows it
  (smtpd_forbid_bare_newline = no), the same Postfix with `smtpd_forbid_bare_newline = yes` (set through
  POSTFIX_EXTRA_MAIN_CF, scripts/servers/postfix) does not.
* Real servers with their mailboxes: the delivery checks of the area against Postfix, Exim, OpenSMTPD,
  aiosmtpd, smtp-server (Maildir) and MailDev (its API), asserted here in one place (the catalog test gives
  every server its mailbox too, and its baselines record the same outcomes).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import scripted
from tests.support import SuiteRun, catalog, mismatches, real_server, run_selected

S = "scenarios/"
FILES = [
    S + "rfc2920/3.2-server-pipelining.yaml",
    S + "rfc1870/3-size-keyword.yaml",
    S + "rfc1870/4-size-limit-enforced.yaml",
    S + "rfc1870/6-extended-mail.yaml",
    S + "rfc6152/3-8bitmime.yaml",
    S + "rfc6531/3-smtputf8.yaml",
    S + "rfc3030/2-chunking.yaml",
    S + "rfc3030/3-binarymime.yaml",
    S + "rfc3461/5-dsn-parameters.yaml",
    S + "rfc2034/4-enhanced-status-codes.yaml",
    *(S + f"security/smuggling-{n}.yaml" for n in (
        "lf-dot-lf", "lf-dot-crlf", "cr-dot-cr", "cr-dot-lf", "crlf-dot-lf", "crlf-nul-dot-crlf", "cr-dot-crlf")),
]
SEQUENCES = ["lf-dot-lf", "lf-dot-crlf", "cr-dot-cr", "cr-dot-lf", "crlf-dot-lf", "crlf-nul-dot-crlf", "cr-dot-crlf"]
LF_SEQUENCES = ["lf-dot-lf", "lf-dot-crlf", "crlf-dot-lf"]  # the fake ends a bare-LF line splitter sees
SMUGGLING = [f"security-smuggling-{n}-{v}" for n in SEQUENCES for v in ("line-ending", "exploitable")]
TIMEOUT = ("--smtp-timeout", "3")

# The correct _Ext server offers every extension and a Maildir: everything passes but the INFO-level branch.
EXT_CORRECT_NOT_PASS = {"rfc6531-3.4-utf8-address-without-parameter": "info"}
# Scenarios of these files added by the coverage push: their broken servers are in test_ext_coverage.py (_Cov);
# _Ext keeps them (it must pass them, as every other scenario of the area).
PROVEN_IN_TEST_EXT_COVERAGE = {
    "rfc2920-3.2-reply-text-names-command", "rfc6531-3.7.4.1-rcpt-reply-ascii",
    "rfc6531-3.7.4.2-vrfy-utf8-252-or-550", "rfc6531-3.7.4.2-vrfy-250-names-mailbox", "rfc6531-3.7.3-trace-u-labels",
}

# label -> (faults of tests/servers/faulty.py, {scenario id: expected outcome}); "faulty-ok" has no fault.
FAULTY: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "faulty-ok": ((), {
        **{sid: "pass" for sid in (
            "rfc2920-3.2-transaction-in-one-write", "rfc2920-3.2-replies-in-order",
            "rfc2920-3.2-long-group-none-lost", "rfc2920-3.2-noop-reply-not-buffered",
            "rfc2920-3.2-unknown-command-reply-not-buffered", "rfc2920-3.2-pending-replies-before-partial-command",
            "rfc2920-3.2-data-refused-without-valid-recipient", "rfc1870-7-declared-size-above-limit-552",
            "rfc1870-3-size-value-twenty-digits", "rfc1870-4-message-above-limit-refused",
            "rfc2034-4-codes-in-transaction", "rfc2034-4-codes-in-error-replies", "rfc2034-4-codes-after-helo",
            "rfc2034-4-codes-on-every-line")},
        **{sid: "pass" for sid in SMUGGLING},
    }),
    "pipelining-drop": (("pipelining-drop",), {
        "rfc2920-3.2-transaction-in-one-write": "fail",
        "rfc2920-3.2-replies-in-order": "fail",
        "rfc2920-3.2-long-group-none-lost": "fail",
        "rfc2920-3.2-noop-reply-not-buffered": "fail",
        "rfc2920-3.2-unknown-command-reply-not-buffered": "fail",
        "rfc2920-3.2-pending-replies-before-partial-command": "fail",
        "rfc2920-3.2-data-refused-without-valid-recipient": "non-strict",  # a SHOULD
    }),
    "size-not-enforced": (("size-not-enforced",), {
        "rfc1870-7-declared-size-above-limit-552": "fail",
        "rfc1870-3-size-value-twenty-digits": "fail",
        "rfc1870-4-message-above-limit-refused": "fail",
        "rfc1870-3-ehlo-size-parameter-decimal": "pass",
    }),
    "no-enhanced": (("no-enhanced",), {
        "rfc2034-4-codes-in-transaction": "fail",
        "rfc2034-4-codes-in-error-replies": "fail",
        "rfc2034-4-codes-after-helo": "fail",
        "rfc2034-4-codes-on-every-line": "fail",
    }),
    "enhanced-mismatch": (("enhanced-mismatch",), {
        "rfc2034-4-codes-in-transaction": "fail",
        "rfc2034-4-codes-in-error-replies": "fail",
        "rfc2034-4-codes-after-helo": "fail",
        "rfc2034-4-codes-on-every-line": "fail",
    }),
    "lf-ends-data": (("lf-ends-data",), {
        **{f"security-smuggling-{n}-{v}": "fail" for n in LF_SEQUENCES for v in ("line-ending", "exploitable")},
        **{f"security-smuggling-{n}-{v}": "pass" for n in SEQUENCES if n not in LF_SEQUENCES
           for v in ("line-ending", "exploitable")},
    }),
}

# label -> (faults of _Ext, {scenario id: expected outcome})
EXT: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "size-ends-data": (("size-ends-data",), {"rfc1870-6-size-not-end-of-data": "fail"}),
    "size-552-within": (("size-552-always",), {"rfc1870-6.3-no-552-within-declared-size": "non-strict",
                                               "rfc1870-7-mail-size-parameter-accepted": "pass"}),
    "size-lenient": (("size-lenient",), {"rfc1870-6-size-value-syntax-error": "info",
                                         "rfc1870-7-declared-size-above-limit-552": "fail"}),
    "size-word": (("size-word",), {"rfc1870-3-ehlo-size-parameter-decimal": "fail"}),
    "size-refused": (("size-refused",), {"rfc1870-7-mail-size-parameter-accepted": "fail"}),
    "size-no-limit": (("size-no-limit",), {  # "SIZE" alone: no fixed limit to exceed
        "rfc1870-3-ehlo-size-parameter-decimal": "pass",
        "rfc1870-7-declared-size-above-limit-552": "unsupported",
        "rfc1870-3-size-value-twenty-digits": "unsupported",
        "rfc1870-4-message-above-limit-refused": "unsupported",
    }),
    "body-refused": (("body-refused",), {
        "rfc6152-3-body-8bitmime-accepted": "fail",
        "rfc6152-3-body-7bit-accepted": "fail",
        "rfc6152-3-8bit-message-accepted": "fail",
        "rfc6152-3-8bit-octets-preserved": "fail",
        "rfc6531-3.2-utf8-message-accepted": "fail",
    }),
    "body-lenient": (("body-lenient",), {"rfc6152-2-unknown-body-value-refused": "info"}),
    # RFC 5321 §4.1.1.11: 455 when "temporarily unable to accommodate" the parameter (issue #11, finding 5)
    "body-busy": (("body-busy",), {"rfc6152-2-unknown-body-value-refused": "pass"}),
    "strip-8bit": (("strip-8bit",), {
        "rfc6152-3-8bit-octets-preserved": "fail",
        "rfc6152-3-8bit-message-accepted": "pass",  # the replies cannot tell
        "rfc3030-3-binarymime-octets-preserved": "fail",
    }),
    "utf8-without-8bitmime": (("no-8bitmime",), {"rfc6531-3.1-8bitmime-announced": "fail"}),
    "utf8-keyword-param": (("smtputf8-param",), {"rfc6531-3.1-keyword-without-parameters": "fail"}),
    "utf8-ehlo-domain": (("utf8-ehlo-domain",), {"rfc6531-3.7.1-ehlo-domain-ascii": "fail"}),
    "utf8-refused": (("utf8-refused",), {
        "rfc6531-3.2-utf8-local-part-sender": "fail",
        "rfc6531-3.2-utf8-domain-sender": "fail",
        "rfc6531-3.2-utf8-recipient": "fail",
        "rfc6531-3.2-utf8-message-accepted": "fail",
    }),
    "utf8-param-value": (("utf8-param-value",), {"rfc6531-3.4-parameter-takes-no-value": "fail"}),
    "vrfy-param-refused": (("vrfy-param-refused",), {"rfc6531-3.1-vrfy-smtputf8-parameter": "fail"}),
    "vrfy-echo": (("vrfy-echo",), {"rfc6531-3.7.4.2-vrfy-reply-ascii": "fail"}),
    "no-bdat": (("no-bdat",), {"rfc3030-2-bdat-last-single-chunk": "fail",
                               "rfc3030-2-data-still-supported": "pass"}),
    "bdat-unstuff": (("bdat-unstuff",), {"rfc3030-2-bdat-content-not-unstuffed": "fail",
                                         "rfc3030-2-bdat-last-single-chunk": "pass"}),
    "bdat-data-ok": (("bdat-data-ok",), {"rfc3030-2-data-after-bdat-503": "fail"}),
    "bdat-no-zero": (("bdat-no-zero",), {"rfc3030-2-bdat-zero-last": "fail"}),
    "bdat-sticky": (("bdat-sticky",), {"rfc3030-2-bdat-after-last-503": "fail"}),
    "bdat-one-reply": (("bdat-one-reply",), {"rfc3030-2-bdat-two-chunks": "fail"}),
    "bdat-no-discard": (("bdat-no-discard",), {"rfc3030-2-refused-bdat-data-discarded": "fail",
                                               "rfc3030-2-pipelined-bdat-after-failure-discarded": "fail"}),
    "bdat-nul-crash": (("bdat-nul-crash",), {"rfc3030-2-arbitrary-octets-in-chunk": "fail"}),
    "chunking-without-data": (("no-data",), {"rfc3030-2-data-still-supported": "fail"}),
    "binarymime-data-ok": (("binarymime-data-ok",), {"rfc3030-3-binarymime-data-503": "fail"}),
    "binary-cte-refused": (("binary-cte-refused",), {"rfc3030-3-binary-cte-without-binarymime-accepted": "fail"}),
    "dsn-lenient": (("dsn-lenient",), {
        "rfc3461-5.1-ret-invalid-value-501": "fail",
        "rfc3461-5.1-ret-twice-501": "fail",
        "rfc3461-5.1-envid-invalid-xtext-501": "fail",
        "rfc3461-5.1-notify-invalid-value-501": "non-strict",
        "rfc3461-5.1-notify-never-combined-501": "non-strict",
        "rfc3461-5.1-notify-twice-501": "non-strict",
        "rfc3461-5.1-orcpt-without-address-type-501": "non-strict",
    }),
    "dsn-refused": (("dsn-refused",), {
        "rfc3461-5.1-mail-ret-envid-accepted": "fail",
        "rfc3461-5.1-rcpt-notify-orcpt-accepted": "fail",
        "rfc3461-5.1-rcpt-notify-never-accepted": "fail",
        "rfc3461-5.4-envid-100-characters-accepted": "fail",
        "rfc3461-5.4-mail-all-parameters-accepted": "fail",
        "rfc3461-5.4-orcpt-500-characters-accepted": "fail",
    }),
    "short-lines": (("short-lines",), {"rfc3461-5.4-orcpt-500-characters-accepted": "fail",
                                       "rfc3461-5.4-envid-100-characters-accepted": "pass"}),
    "any-eol": (("any-eol",), {
        **{sid: "fail" for sid in SMUGGLING},
        "security-smuggling-lf-dot-lf-stored": "fail",
    }),
}


# ----- _Ext: a small server offering every extension of the area, correct unless a fault says otherwise -----
XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
DOMAIN = "example.test"


class _Ext(scripted.Session):
    greeting = "220 ext.example.test ESMTP"
    tag = "ext"
    size = 100_000  # the fixed message size limit

    def reset(self) -> None:
        super().reset()
        self.utf8 = False
        self.binary = False
        self.declared: int | None = None
        self.chunks: list[bytes] | None = None  # BDAT content so far

    # ----- input -----
    def next_line(self) -> str:
        limit = 512 if "short-lines" in self.f else 4096
        while (i := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > limit:
                self.buf = b""
                return scripted.TOO_LONG
            self.fill()
        out, self.buf = self.buf[:i], self.buf[i + 2:]
        return scripted.TOO_LONG if len(out) + 2 > limit else out.decode("utf-8", "replace")

    def data(self) -> bytes | None:
        """Mail data up to the end of data (None: cut at the declared SIZE, fault size-ends-data)."""
        acc, self.buf, start = bytearray(b"\r\n" + self.buf), b"", 0
        eod = re.compile(rb"(?:\r\n|\r|\n)\x00*\.\x00*(?:\r\n|\r(?!\Z)|\n)" if "any-eol" in self.f else rb"\r\n\.\r\n")
        while True:
            m = eod.search(acc, max(0, start - 8))
            if m:
                break
            if "size-ends-data" in self.f and self.declared is not None and len(acc) - 2 >= self.declared:
                self.buf = bytes(acc[2 + self.declared:])
                return None
            start = len(acc)
            data = self.sock.recv(65536)
            if not data:
                raise scripted.Closed
            acc += data
        eol = 2 if acc[m.start():m.start() + 2] == b"\r\n" else 1  # the line end before the "." belongs to the data
        content, self.buf = bytes(acc[2:m.start() + eol]), bytes(acc[m.end():])
        lines = re.split(rb"\r\n|\r|\n", content) if "any-eol" in self.f else content.split(b"\r\n")
        return b"\r\n".join(x[1:] if x.startswith(b".") else x for x in lines)

    # ----- output -----
    def store(self, content: bytes) -> None:
        if "strip-8bit" in self.f:
            content = bytes(b & 0x7F for b in content)
        if self.server.maildir is not None:
            super().store(b"Received: from client by ext.example.test\r\n" + content)

    # ----- commands -----
    def cmd_EHLO(self, arg: str) -> None:
        self.reset()
        size = f"SIZE {self.size}"
        if "size-word" in self.f or "size-no-limit" in self.f:
            size = "SIZE 100k" if "size-word" in self.f else "SIZE"
        words = ["PIPELINING", size, "8BITMIME", "SMTPUTF8 on" if "smtputf8-param" in self.f else "SMTPUTF8",
                 "CHUNKING", "BINARYMIME", "DSN", "ENHANCEDSTATUSCODES", "HELP"]
        if "no-8bitmime" in self.f:
            words.remove("8BITMIME")
        name = "\u0435xt.example.test" if "utf8-ehlo-domain" in self.f else "ext.example.test"  # Cyrillic e
        self.send(f"250-{name}", *(f"250-{w}" for w in words[:-1]), f"250 {words[-1]}")

    def cmd_HELO(self, arg: str) -> None:
        self.reset()
        self.send("250 ext.example.test")

    def cmd_HELP(self, arg: str) -> None:
        self.send("214-2.0.0 ext.example.test: a test server", "214 2.0.0 end of HELP")

    def cmd_VRFY(self, arg: str) -> None:
        words = arg.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].upper() != "SMTPUTF8"):
            self.reply(501, "5.5.4", "syntax: VRFY name [SMTPUTF8]")
        elif len(words) == 2 and "vrfy-param-refused" in self.f:
            self.reply(501, "5.5.4", "syntax error")
        elif "vrfy-echo" in self.f:
            self.reply(252, "2.1.5", f"<{words[0]}> cannot be verified")
        else:
            self.reply(252, "2.1.5", "cannot verify, send mail to find out")

    @staticmethod
    def params(rest: str) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        for word in rest.split():
            key, eq, value = word.partition("=")
            out.append((key.upper(), value if eq else None))
        return out

    def cmd_MAIL(self, arg: str) -> None:
        m = re.fullmatch(r"(?i)FROM:<([^<>\s]*)>(.*)", arg)
        if self.mail is not None:
            return self.reply(503, "5.5.1", "nested MAIL")
        if not m:
            return self.reply(501, "5.5.4", "syntax: MAIL FROM:<path>")
        path, seen = m.group(1), set()
        utf8 = binary = False
        declared = None
        for key, value in self.params(m.group(2)):
            dsn = key in ("RET", "ENVID")
            if dsn and "dsn-refused" in self.f:
                return self.reply(555, "5.5.4", f"{key} not supported")
            if key in seen and not ("dsn-lenient" in self.f and dsn):
                return self.reply(501, "5.5.4", f"{key} given twice")
            seen.add(key)
            if key == "SIZE":
                if "size-refused" in self.f:
                    return self.reply(555, "5.5.4", "SIZE not supported")
                if "size-lenient" in self.f:
                    continue
                if value is None or not re.fullmatch(r"[0-9]{1,20}", value):
                    return self.reply(501, "5.5.4", "syntax: SIZE=<octets>")
                if int(value) > self.size:
                    return self.reply(552, "5.3.4", "message size exceeds fixed maximum message size")
                declared = int(value)
            elif key == "BODY":
                if "body-refused" in self.f:
                    return self.reply(555, "5.5.4", "BODY not supported")
                if (value or "").upper() not in ("7BIT", "8BITMIME", "BINARYMIME") and "body-busy" in self.f:
                    return self.reply(455, "4.5.4", f"BODY={value} cannot be accommodated now")
                if (value or "").upper() not in ("7BIT", "8BITMIME", "BINARYMIME") and "body-lenient" not in self.f:
                    return self.reply(555, "5.5.4", f"BODY={value} not supported")
                binary = (value or "").upper() == "BINARYMIME"
            elif key == "SMTPUTF8":
                if value is not None and "utf8-param-value" not in self.f:
                    return self.reply(501, "5.5.4", "SMTPUTF8 takes no value")
                utf8 = True
            elif key == "RET":
                if (value or "").upper() not in ("FULL", "HDRS") and "dsn-lenient" not in self.f:
                    return self.reply(501, "5.5.4", "syntax: RET=FULL|HDRS")
            elif key == "ENVID":
                if not (value and XTEXT.fullmatch(value) and len(value) <= 100) and "dsn-lenient" not in self.f:
                    return self.reply(501, "5.5.4", "syntax: ENVID=xtext")
            else:
                return self.reply(555, "5.5.4", f"{key} not recognized")
        if not path.isascii() and "utf8-refused" in self.f:
            return self.reply(501, "5.5.4", "invalid character in address")
        if not path.isascii() and not utf8:
            return self.reply(550, "5.6.7", "non-ASCII address needs SMTPUTF8")
        self.mail, self.utf8, self.binary, self.declared = path, utf8, binary, declared
        if "size-552-always" in self.f:
            self.declared = 0  # any message will be "larger than declared"
        self.reply(250, "2.1.0", "sender ok")

    def cmd_RCPT(self, arg: str) -> None:
        m = re.fullmatch(r"(?i)TO:<([^<>\s]*)>(.*)", arg)
        if self.mail is None:
            return self.reply(503, "5.5.1", "need MAIL")
        if not m:
            return self.reply(501, "5.5.4", "syntax: RCPT TO:<path>")
        seen: set[str] = set()
        for key, value in self.params(m.group(2)):
            if key not in ("NOTIFY", "ORCPT"):
                return self.reply(555, "5.5.4", f"{key} not recognized")
            if "dsn-refused" in self.f:
                return self.reply(555, "5.5.4", f"{key} not supported")
            if "dsn-lenient" in self.f:
                continue
            if key in seen:
                return self.reply(501, "5.5.4", f"{key} given twice")
            seen.add(key)
            items = (value or "").upper().split(",")
            if key == "NOTIFY" and not (items == ["NEVER"] or (
                    set(items) <= {"SUCCESS", "FAILURE", "DELAY"} and len(set(items)) == len(items))):
                return self.reply(501, "5.5.4", "syntax: NOTIFY=NEVER|SUCCESS,FAILURE,DELAY")
            if key == "ORCPT" and not re.fullmatch(r"[A-Za-z0-9-]+;" + XTEXT.pattern, value or "x"):
                return self.reply(501, "5.5.4", "syntax: ORCPT=addr-type;xtext")
        address = m.group(1)
        local, _, domain = address.rpartition("@")
        if not address.isascii():
            if "utf8-refused" in self.f:
                return self.reply(501, "5.5.4", "invalid character in address")
            if not self.utf8:
                return self.reply(553, "5.6.7", "non-ASCII address needs SMTPUTF8")
        if domain.lower() != DOMAIN:
            return self.reply(550, "5.7.1", "relaying denied")
        if local.lower() not in ("user", "postmaster"):
            return self.reply(550, "5.1.1", "user unknown")
        self.rcpts.append(address)
        self.reply(250, "2.1.5", "recipient ok")

    def cmd_DATA(self, arg: str) -> None:
        if "no-data" in self.f:
            return self.reply(502, "5.5.1", "use BDAT")
        if self.mail is None:
            return self.reply(503, "5.5.1", "need MAIL")
        if not self.rcpts:
            return self.reply(554, "5.5.1", "no valid recipients")
        if (self.chunks is not None and "bdat-data-ok" not in self.f) or (
                self.binary and "binarymime-data-ok" not in self.f):
            return self.reply(503, "5.5.1", "DATA not allowed in this transaction")
        self.send("354 end data with <CR><LF>.<CR><LF>")
        content = self.data()
        declared = self.declared
        self.reset()
        if content is None:  # size-ends-data: the declared size was taken for the end of the content
            return self.reply(250, "2.0.0", "queued (declared size reached)")
        if len(content) > self.size:
            return self.reply(552, "5.3.4", "message size exceeds fixed maximum message size")
        if "binary-cte-refused" in self.f and re.search(rb"(?im)^content-transfer-encoding:\s*binary", content):
            return self.reply(554, "5.6.1", "binary content needs BODY=BINARYMIME")
        if declared is not None and len(content) > declared and "size-552-always" in self.f:
            return self.reply(552, "5.3.4", "message larger than declared")
        self.store(content)
        self.reply(250, "2.0.0", "queued")

    def cmd_BDAT(self, arg: str) -> None:
        if "no-bdat" in self.f:
            return self.reply(502, "5.5.1", "BDAT not implemented")
        m = re.fullmatch(r"(?i)([0-9]{1,9})( LAST)?", arg)
        if not m:
            return self.reply(501, "5.5.4", "syntax: BDAT size [LAST]")
        size, last = int(m.group(1)), bool(m.group(2))
        problem = ((503, "5.5.1", "need MAIL") if self.mail is None else
                   (554, "5.5.1", "no valid recipients") if not self.rcpts else None)
        if problem and "bdat-no-discard" in self.f:
            return self.reply(*problem)  # the chunk stays in the input and is read as commands
        chunk = self.octets(size)
        if problem:
            return self.reply(*problem)
        if b"\x00" in chunk and "bdat-nul-crash" in self.f:
            raise scripted.Closed
        if size == 0 and last and "bdat-no-zero" in self.f:
            return self.reply(501, "5.5.4", "empty chunk")
        self.chunks = [*(self.chunks or []), chunk]
        if not last:
            if "bdat-one-reply" not in self.f:
                self.reply(250, "2.0.0", f"{size} octets received")
            return
        content = b"".join(self.chunks)
        if "bdat-unstuff" in self.f:
            content = re.sub(rb"(?m)^\.", b"", content)
        self.store(content)
        if "bdat-sticky" not in self.f:
            self.reset()
        self.reply(250, "2.0.0", "queued")


@pytest.fixture
def ext(tmp_path: Path) -> Iterator[Callable[..., tuple[str, Path]]]:
    """ext(*faults) -> ("127.0.0.1:PORT", maildir) of an _Ext server running in this process."""
    with scripted.Servers() as servers:
        yield lambda *faults: servers.with_maildir(_Ext, faults, tmp_path / f"maildir-{len(servers)}")


# ----- helpers ------------------------------------------------------------------------------------------
def _run(targets: dict[str, dict[str, str]], wanted: dict[tuple[str, str], str], ids: dict[str, str], tmp: Path,
         *args: str) -> SuiteRun:
    return run_selected(targets, wanted, ids, tmp, *args, concurrency=48, timeout=300)


# ----- tests --------------------------------------------------------------------------------------------
def test_catalog_loads_and_every_expectation_names_a_scenario() -> None:
    ids = catalog(FILES)
    assert len(ids) >= 45
    named = set(EXT_CORRECT_NOT_PASS)
    for _, expect in [*FAULTY.values(), *EXT.values()]:
        named |= set(expect)
    assert named <= set(ids), sorted(named - set(ids))
    # every scenario of the area meets a server that breaks it (FAIL, or NON-STRICT/INFO by its grade)
    proven = {sid for _, expect in [*FAULTY.values(), *EXT.values()] for sid, o in expect.items() if o != "pass"}
    unproven = set(ids) - proven - set(EXT_CORRECT_NOT_PASS) - PROVEN_IN_TEST_EXT_COVERAGE
    assert not unproven, sorted(unproven)


def test_broken_servers_fail_and_correct_servers_pass(faulty: Callable[..., str],
                                                      ext: Callable[..., tuple[str, Path]], tmp_path: Path) -> None:
    ids = catalog(FILES)
    address, maildir = ext()
    targets: dict[str, dict[str, str]] = {"ext-ok": {"address": address, "mailbox": f"maildir:{maildir}"}}
    wanted = {(sid, "ext-ok"): EXT_CORRECT_NOT_PASS.get(sid, "pass") for sid in ids}
    for label, (faults, expect) in FAULTY.items():
        targets[label] = {"address": faulty(*faults)}
        wanted.update({(sid, label): outcome for sid, outcome in expect.items()})
    for label, (faults, expect) in EXT.items():
        address, maildir = ext(*faults)
        targets[label] = {"address": address, "mailbox": f"maildir:{maildir}"}
        wanted.update({(sid, label): outcome for sid, outcome in expect.items()})
    started = time.monotonic()
    run = _run(targets, wanted, ids, tmp_path, *TIMEOUT)
    wrong = mismatches(run, wanted)
    assert not wrong, "\n".join(wrong)
    assert time.monotonic() - started < 120


def test_postfix_forbid_bare_newline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Postfix 3.7 by default ends DATA at <LF>.<LF> (and the other bare-LF fakes) and runs the smuggled
    transaction; with smtpd_forbid_bare_newline = yes it does neither."""
    ids = catalog(FILES)
    smuggling = {sid for sid in ids if sid.startswith("security-smuggling-")}
    with contextlib.ExitStack() as stack:
        default = stack.enter_context(real_server("postfix"))
        monkeypatch.setenv("POSTFIX_EXTRA_MAIN_CF", "smtpd_forbid_bare_newline = yes")
        forbid = stack.enter_context(real_server("postfix"))
        monkeypatch.delenv("POSTFIX_EXTRA_MAIN_CF")
        main_cf = (forbid.statedir / "etc" / "main.cf").read_text()
        assert main_cf.rstrip().endswith("smtpd_forbid_bare_newline = yes")
        assert "smtpd_forbid_bare_newline" not in (default.statedir / "etc" / "main.cf").read_text()
        targets = {"postfix-default": {"address": default.address, "mailbox": f"maildir:{default.maildir}"},
                   "postfix-forbid": {"address": forbid.address, "mailbox": f"maildir:{forbid.maildir}"}}
        wanted: dict[tuple[str, str], str] = {}
        for sid in smuggling:
            bare_lf = any(sid.startswith(f"security-smuggling-{n}-") for n in LF_SEQUENCES)
            wanted[(sid, "postfix-default")] = "fail" if bare_lf else "pass"
            wanted[(sid, "postfix-forbid")] = "pass"
        run = _run(targets, wanted, ids, tmp_path, "--smtp-timeout", "10")
    wrong = mismatches(run, wanted)
    assert not wrong, "\n".join(wrong)
    # the default configuration's finding, as the report shows it
    lf = run.result("security-smuggling-lf-dot-lf-exploitable", "postfix-default")
    assert "smuggled RCPT TO was accepted" in lf["message"]
    stored = run.result("security-smuggling-lf-dot-lf-stored", "postfix-default")
    assert "2 stored message(s)" in stored["message"]


# What the real servers do with the area's delivery checks (their mailboxes given), and the BDAT/8BITMIME
# outcomes that need one. Postfix's smuggling result is its default configuration's (see the test above);
# OpenSMTPD answers the smuggled MAIL FROM "500 Pipelining not supported" and closes: nothing to count.
DELIVERY = ["rfc6152-3-8bit-octets-preserved", "rfc3030-2-bdat-content-not-unstuffed",
            "rfc3030-3-binarymime-octets-preserved", "security-smuggling-lf-dot-lf-stored"]
REAL: dict[str, dict[str, str]] = {
    "postfix": {"rfc6152-3-8bit-octets-preserved": "pass", "rfc3030-2-bdat-content-not-unstuffed": "pass",
                "rfc3030-3-binarymime-octets-preserved": "unsupported", "security-smuggling-lf-dot-lf-stored": "fail"},
    "exim": {"rfc6152-3-8bit-octets-preserved": "pass", "rfc3030-2-bdat-content-not-unstuffed": "pass",
             "rfc3030-3-binarymime-octets-preserved": "unsupported", "security-smuggling-lf-dot-lf-stored": "pass"},
    "opensmtpd": {"rfc6152-3-8bit-octets-preserved": "pass", "rfc3030-2-bdat-content-not-unstuffed": "unsupported",
                  "rfc3030-3-binarymime-octets-preserved": "unsupported",
                  "security-smuggling-lf-dot-lf-stored": "pass"},
    **{name: {"rfc6152-3-8bit-octets-preserved": "pass", "rfc3030-2-bdat-content-not-unstuffed": "unsupported",
              "rfc3030-3-binarymime-octets-preserved": "unsupported", "security-smuggling-lf-dot-lf-stored": "pass"}
       for name in ("aiosmtpd", "smtp-server", "maildev")},
}


def test_real_servers_with_mailboxes(tmp_path: Path) -> None:
    ids = catalog(FILES)
    with contextlib.ExitStack() as stack:
        targets: dict[str, dict[str, str]] = {}
        for name in REAL:
            server = stack.enter_context(real_server(name))
            mailbox = f"maildev:{server.api}/api" if name == "maildev" else f"maildir:{server.maildir}"
            targets[name] = {"address": server.address, "mailbox": mailbox}
        wanted = {(sid, name): outcome for name, expect in REAL.items() for sid, outcome in expect.items()}
        run = _run(targets, wanted, ids, tmp_path, "--smtp-timeout", "10")
    wrong = mismatches(run, wanted)
    assert not wrong, "\n".join(wrong)


def test_ext_server_speaks_smtp(ext: Callable[..., tuple[str, Path]]) -> None:
    """_Ext itself: EHLO lists the extensions, DATA and BDAT transactions are stored (so faults are the only
    difference between it and the broken variants)."""
    address, maildir = ext()
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        f = sock.makefile("rwb")

        def reply() -> bytes:
            lines = [f.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(f.readline())
            return b"".join(lines)

        def cmd(data: bytes) -> bytes:
            f.write(data)
            f.flush()
            return reply()

        assert reply().startswith(b"220 ")
        ehlo = cmd(b"EHLO x\r\n")
        for word in (b"PIPELINING", b"SIZE 100000", b"8BITMIME", b"SMTPUTF8", b"CHUNKING", b"DSN",
                     b"ENHANCEDSTATUSCODES"):
            assert b"250-" + word + b"\r\n" in ehlo or b"250 " + word + b"\r\n" in ehlo
        assert cmd(b"MAIL FROM:<a@example.net> SIZE=10\r\n").startswith(b"250 2.1.0")
        assert cmd(b"RCPT TO:<user@example.test> NOTIFY=NEVER\r\n").startswith(b"250 2.1.5")
        assert cmd(b"DATA\r\n").startswith(b"354")
        assert cmd(b"Subject: x\r\n\r\n..dot\r\n.\r\n").startswith(b"250 2.0.0")
        assert cmd(b"MAIL FROM:<a@example.net>\r\nRCPT TO:<user@example.test>\r\n").startswith(b"250 2.1.0")
        assert reply().startswith(b"250 2.1.5")
        assert cmd(b"BDAT 5 LAST\r\n..x\r\n").startswith(b"250 2.0.0")
        assert cmd(b"QUIT\r\n").startswith(b"221")
    stored = sorted((maildir / "new").iterdir())
    assert [p.read_bytes().split(b"\r\n", 1)[1] for p in stored] == [b"Subject: x\r\n\r\n.dot\r\n", b"..x\r\n"]

