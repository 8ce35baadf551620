"""The embedded default target: aiosmtpd configured as a small, well-behaved mail server.

Run as `python -m conformance.builtin --port PORT --maildir DIR [--domain example.test]`. It accepts mail
for its own domain (and unqualified `postmaster`), refuses to relay anywhere else, and stores each
message in a Maildir, so delivery checks have something to read.

Where aiosmtpd 1.4 itself strays from RFC 5321, this subclass corrects it (the embedded default should
show what a conforming server looks like): command lines end at CRLF only (§2.3.8), HELP answers 214
(§4.1.1.8), EXPN is implemented (§3.5.2), and addresses with control characters or non-ASCII without
SMTPUTF8 are refused (§4.1.2, RFC 6531).
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import mailbox
import re
import signal
import socket
import uuid
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

SIZE_LIMIT = 10 * 1024 * 1024
MAX_HOPS = 100  # RFC 5321 §6.3: a loop-detection threshold of at least 100 Received fields


class _CRLFLines:
    """The connection's reader with command lines ending at CRLF only: a bare LF is data (§2.3.8)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        if separator != b"\n":
            return await self._reader.readuntil(separator)
        line = await self._reader.readuntil(b"\r\n")
        # a bare CR or LF inside the line is an odd character, not a line end: NOOP<LF>QUIT is one NOOP
        return line[:-2].replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"


# RFC 3463 codes for aiosmtpd's own replies, which carry none (RFC 2034: once ENHANCEDSTATUSCODES is
# advertised, every 2xx/4xx/5xx reply but the greeting and those to HELO/EHLO starts with one)
ENHANCED = {
    "221": "2.0.0", "235": "2.7.0", "250": "2.0.0", "251": "2.1.5", "252": "2.5.0", "214": "2.0.0",
    "421": "4.3.0", "450": "4.2.0", "451": "4.3.0", "452": "4.5.3", "454": "4.7.0",
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4", "530": "5.7.0",
    "535": "5.7.8", "538": "5.7.11", "550": "5.1.1", "551": "5.1.6", "552": "5.3.4", "553": "5.1.3",
    "554": "5.0.0", "555": "5.5.4",
}
_HAS_ENHANCED = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}(?: |$)")


def with_enhanced_code(status: str) -> str:
    code, sep, text = status[:3], status[3:4], status[4:]
    enhanced = ENHANCED.get(code)
    if enhanced is None or sep not in (" ", "-", "") or _HAS_ENHANCED.match(text):
        return status
    return f"{code}{sep or ' '}{enhanced} {text}".rstrip()


class ConformingSMTP(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._reader = _CRLFLines(self._reader)  # type: ignore[assignment]
        self._plain_replies = False  # True while answering HELO/EHLO: no enhanced codes there
        self._reply_lines: list[str] = []  # the lines of a multi-line reply pushed so far

    async def push(self, status: str) -> None:  # type: ignore[override]
        if not self._plain_replies and not status.startswith("220 "):
            status = with_enhanced_code(status)
        if status[3:4] == "-":
            # aiosmtpd writes each line of a reply as it is pushed: one reply, one write instead (as
            # Postfix and Exim send it), so the client reads an EHLO reply once, not once per keyword
            self._reply_lines.append(status)
            return
        if self._reply_lines:
            status, self._reply_lines = "\r\n".join([*self._reply_lines, status]), []
        await super().push(status)

    async def smtp_EHLO(self, hostname: str) -> None:
        self._plain_replies = True
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._plain_replies = False

    async def smtp_HELO(self, hostname: str) -> None:
        self._plain_replies = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._plain_replies = False

    @syntax("HELP [command]")
    async def smtp_HELP(self, arg: str) -> None:
        await self.push("214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY EXPN HELP")

    @syntax("EXPN <list>")
    async def smtp_EXPN(self, arg: str) -> None:
        if not arg:
            await self.push("501 5.5.4 Syntax: EXPN <list>")
        else:
            await self.push("550 5.1.1 Not a mailing list")


def _address_problem(address: str, options: list[str]) -> str | None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in address):
        return "501 5.1.7 Control characters are not allowed in an address"
    if not address.isascii() and "SMTPUTF8" not in (o.upper() for o in options):
        return "553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter"
    return None


def _u_labels(name: str) -> str:
    try:
        return name.encode("ascii").decode("idna")
    except (UnicodeError, ValueError):
        return name


def _without_return_path(content: bytes) -> bytes:
    """Final delivery records the reverse-path itself: a Return-Path the client sent is dropped (§4.4)."""
    head, sep, body = content.partition(b"\r\n\r\n")
    if not sep:
        return content
    kept: list[bytes] = []
    skipping = False
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"return-path:")
        if not skipping:
            kept.append(line)
    return b"\r\n".join(kept) + sep + body


class MaildirHandler:
    def __init__(self, maildir: str, domain: str) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)
        self.domain = domain.lower()

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        # EXPN is implemented, so it is listed (§3.5.2); commands are read and answered one by one, in order,
        # from a buffer, which is all PIPELINING asks of a server (RFC 2920)
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-EXPN", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        problem = _address_problem(address, mail_options)
        if problem:
            return problem
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        problem = _address_problem(address, envelope.mail_options)
        if problem:
            return problem
        local, _, domain = address.rpartition("@")
        if not local:  # unqualified: only postmaster (RFC 5321 §4.5.1)
            if address.lower() != "postmaster":
                return "550 5.1.3 unqualified recipients other than postmaster are not accepted"
        elif domain.lower() != self.domain:
            return "550 5.7.1 relaying denied"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        head = content.partition(b"\r\n\r\n")[0]
        if sum(1 for line in head.split(b"\r\n") if line.lower().startswith(b"received:")) >= MAX_HOPS:
            return "554 5.4.6 Too many hops: mail loop?"  # §6.3 loop detection; nothing is stored
        peer = session.peer[0] if session.peer else "unknown"
        queue_id = uuid.uuid4().hex[:12].upper()
        protocol = "ESMTP" if session.extended_smtp else "SMTP"
        # §4.4: a Received line at the top (FROM, BY, WITH, ID, FOR with one path, RFC 5322 date) and, at
        # final delivery, the reverse-path as Return-Path
        for_clause = f"\r\n\tfor <{envelope.rcpt_tos[0]}>" if len(envelope.rcpt_tos) == 1 else ""
        helo = session.host_name or "unknown"
        if "SMTPUTF8" in (o.upper() for o in envelope.mail_options):
            protocol = "UTF8SMTP"  # RFC 6531 §3.7.3: WITH names the protocol, names in U-label form
            helo = _u_labels(helo)
        trace = (f"Return-Path: <{envelope.mail_from}>\r\n"
                 f"Received: from {helo} ([{peer}])\r\n\tby {server.hostname} with {protocol} "
                 f"id {queue_id}{for_clause};\r\n\t{email.utils.format_datetime(email.utils.localtime())}\r\n")
        self.maildir.add(trace.encode("utf-8") + _without_return_path(content))
        return f"250 2.0.0 OK: queued as {queue_id}"


async def serve(host: str, port: int, maildir: str, domain: str, hostname: str) -> None:
    handler = MaildirHandler(maildir, domain)

    def factory() -> SMTP:
        return ConformingSMTP(handler, hostname=hostname, data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True,
                    decode_data=False, ident="smtp-conformance builtin (aiosmtpd)")

    await serve_until_stopped(factory, host, port)


async def serve_until_stopped(factory: Callable[[], SMTP], host: str, port: int) -> None:
    """Listen on host:port with one protocol object per connection until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=host, port=port, family=socket.AF_INET)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conformance.builtin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--domain", default="example.test")
    parser.add_argument("--hostname", default="mx.example.test")
    args: Any = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.maildir, args.domain, args.hostname))


if __name__ == "__main__":
    main()
