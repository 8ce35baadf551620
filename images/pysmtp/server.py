#!/usr/bin/env python3
"""pysmtp: a tiny catch-all SMTP server with an HTTP API (a MailHog stand-in).

Standard library only. SMTP on $PYSMTP_SMTP_PORT (1025), HTTP on
$PYSMTP_HTTP_PORT (8025). Every accepted message is kept in memory and, unless
PYSMTP_SPOOL is empty, written to $PYSMTP_SPOOL/<id>.eml (default
/var/spool/pysmtp).

HTTP API:
  GET    /api/messages             JSON list: id, from, to, helo, peer, received, size, data
  GET    /api/messages/<id>/raw    the message as received (after dot-unstuffing)
  DELETE /api/messages             forget every message
  GET    /api/v2/messages          MailHog-shaped: {total, count, start, items: [{ID, From, To, ...}]}
  DELETE /api/v1/messages          MailHog-shaped delete-all
  GET    /healthz                  "ok"

Like MailHog it accepts every recipient by default. Set PYSMTP_DOMAINS to a
comma-separated list (e.g. "example.test") to refuse other domains with 550.
Only CRLF ends a line; only CRLF "." CRLF ends DATA (RFC 5321 2.3.8, 4.1.1.4).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import email.parser
import email.policy
import json
import os
import re
import signal
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOSTNAME = os.environ.get("PYSMTP_HOSTNAME", "pysmtp.example.test")
SMTP_PORT = int(os.environ.get("PYSMTP_SMTP_PORT", "1025"))
HTTP_PORT = int(os.environ.get("PYSMTP_HTTP_PORT", "8025"))
BIND = os.environ.get("PYSMTP_BIND", "0.0.0.0")
SPOOL = os.environ.get("PYSMTP_SPOOL", "/var/spool/pysmtp")
MAX_SIZE = int(os.environ.get("PYSMTP_MAX_SIZE", str(10 * 1024 * 1024)))
DOMAINS = {d.strip().lower() for d in os.environ.get("PYSMTP_DOMAINS", "").split(",") if d.strip()}
MAX_RECIPIENTS = 1000
MAX_COMMAND_LINE = 512  # RFC 5321 4.5.3.1.4, CRLF included
IDLE_TIMEOUT = 300.0  # RFC 5321 4.5.3.2

MESSAGES: list[dict] = []
LOCK = threading.Lock()

PATH_RE = re.compile(r"^(FROM|TO):\s*<([^<>]*)>(.*)$", re.IGNORECASE | re.DOTALL)


def log(*parts: object) -> None:
    print(datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"), *parts, flush=True)


def store(message: dict) -> None:
    if SPOOL:
        try:
            os.makedirs(SPOOL, exist_ok=True)
            with open(os.path.join(SPOOL, message["id"] + ".eml"), "wb") as f:
                f.write(message["data"])
        except OSError as exc:
            log("spool write failed:", exc)
    with LOCK:
        MESSAGES.append(message)


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.helo: str | None = None
        self.reset()

    def reset(self) -> None:
        self.mail_from: str | None = None
        self.rcpts: list[str] = []

    async def reply(self, text: str) -> None:
        self.writer.write(text.encode("utf-8") + b"\r\n")
        await self.writer.drain()

    async def readline(self) -> bytes | None:
        """One CRLF-terminated line (CRLF stripped); None on EOF."""
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), IDLE_TIMEOUT)
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as exc:
            # Over-long line: swallow it up to the next CRLF, report it as too long.
            await self.reader.readexactly(exc.consumed)
            rest = await self.readline()
            return None if rest is None else b"\x00" * (MAX_COMMAND_LINE + 1)
        return line[:-2]

    async def run(self) -> None:
        log("connect", self.peer)
        await self.reply(f"220 {HOSTNAME} ESMTP pysmtp ready")
        while True:
            line = await self.readline()
            if line is None:
                break
            if len(line) + 2 > MAX_COMMAND_LINE:
                await self.reply("500 Line too long")
                continue
            text = line.decode("utf-8", "replace")
            verb, _, arg = text.partition(" ")
            verb = verb.upper()
            handler = getattr(self, "smtp_" + verb, None) if verb.isalpha() else None
            if handler is None:
                await self.reply("500 Command unrecognized")
                continue
            if await handler(arg.strip()) is False:
                break
        log("disconnect", self.peer)

    async def smtp_EHLO(self, arg: str) -> None:
        if not arg:
            await self.reply("501 Syntax: EHLO domain")
            return
        self.helo = arg
        self.reset()
        await self.reply(
            f"250-{HOSTNAME} greets {arg}\r\n250-SIZE {MAX_SIZE}\r\n250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n250-PIPELINING\r\n250 HELP"
        )

    async def smtp_HELO(self, arg: str) -> None:
        if not arg:
            await self.reply("501 Syntax: HELO domain")
            return
        self.helo = arg
        self.reset()
        await self.reply(f"250 {HOSTNAME}")

    async def smtp_MAIL(self, arg: str) -> None:
        if self.helo is None:
            await self.reply("503 Send HELO/EHLO first")
            return
        if self.mail_from is not None:
            await self.reply("503 Nested MAIL command")
            return
        m = PATH_RE.match(arg)
        if not m or m.group(1).upper() != "FROM":
            await self.reply("501 Syntax: MAIL FROM:<address>")
            return
        for param in m.group(3).split():
            key, _, value = param.partition("=")
            key = key.upper()
            if key == "SIZE":
                if not value.isdigit():
                    await self.reply("501 Syntax error in SIZE parameter")
                    return
                if int(value) > MAX_SIZE:
                    await self.reply("552 Message size exceeds fixed maximum message size")
                    return
            elif (key == "BODY" and value.upper() in ("7BIT", "8BITMIME")) or (
                key == "SMTPUTF8" and not value
            ):
                pass
            else:
                await self.reply(f"555 MAIL FROM parameter {key} not recognized")
                return
        self.mail_from = m.group(2)
        await self.reply("250 OK")

    async def smtp_RCPT(self, arg: str) -> None:
        if self.mail_from is None:
            await self.reply("503 Need MAIL before RCPT")
            return
        m = PATH_RE.match(arg)
        if not m or m.group(1).upper() != "TO" or not m.group(2):
            await self.reply("501 Syntax: RCPT TO:<address>")
            return
        if m.group(3).strip():
            await self.reply("555 RCPT TO parameters not recognized")
            return
        if len(self.rcpts) >= MAX_RECIPIENTS:
            await self.reply("452 Too many recipients")
            return
        address = m.group(2).split(":")[-1]  # drop an obsolete source route
        local, _, domain = address.rpartition("@")
        is_postmaster = (local or domain).lower() == "postmaster"
        if DOMAINS and not is_postmaster and domain.lower() not in DOMAINS:
            await self.reply(f"550 <{address}>: Relay access denied")
            return
        self.rcpts.append(address)
        await self.reply("250 OK")

    async def smtp_DATA(self, arg: str) -> None:
        if self.mail_from is None:
            await self.reply("503 Need MAIL command")
            return
        if not self.rcpts:
            await self.reply("554 No valid recipients")
            return
        await self.reply("354 End data with <CR><LF>.<CR><LF>")
        lines: list[bytes] = []
        size = 0
        at_line_start = True  # False while inside a line longer than the read buffer
        while True:
            try:
                line = await asyncio.wait_for(self.reader.readuntil(b"\r\n"), IDLE_TIMEOUT)
                complete = True
            except asyncio.IncompleteReadError:
                return False
            except asyncio.LimitOverrunError as exc:
                line = await self.reader.readexactly(max(exc.consumed, 1))
                complete = False
            if at_line_start:
                if line == b".\r\n":
                    break
                if line.startswith(b"."):
                    line = line[1:]
            at_line_start = complete
            size += len(line)
            if size <= MAX_SIZE:
                lines.append(line)
        if size > MAX_SIZE:
            await self.reply("552 Message size exceeds fixed maximum message size")
            self.reset()
            return
        message = {
            "id": uuid.uuid4().hex,
            "from": self.mail_from,
            "to": list(self.rcpts),
            "helo": self.helo,
            "peer": self.peer,
            "received": datetime.datetime.now(datetime.UTC).isoformat(),
            "data": b"".join(lines),
        }
        store(message)
        log("message", message["id"], "from", repr(message["from"]), "to", message["to"], "size", size)
        self.reset()
        await self.reply(f"250 OK queued as {message['id']}")

    async def smtp_RSET(self, arg: str) -> None:
        self.reset()
        await self.reply("250 OK")

    async def smtp_NOOP(self, arg: str) -> None:
        await self.reply("250 OK")

    async def smtp_VRFY(self, arg: str) -> None:
        await self.reply("252 Cannot VRFY user, but will accept message and attempt delivery")

    async def smtp_EXPN(self, arg: str) -> None:
        await self.reply("502 EXPN not implemented")

    async def smtp_HELP(self, arg: str) -> None:
        await self.reply("214 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT")

    async def smtp_QUIT(self, arg: str) -> bool:
        await self.reply(f"221 {HOSTNAME} closing connection")
        return False


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await Session(reader, writer).run()
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()


def _mailhog_path(address: str) -> dict:
    local, _, domain = address.rpartition("@")
    return {"Relays": None, "Mailbox": local if domain else address, "Domain": domain, "Params": ""}


def _mailhog_item(m: dict) -> dict:
    data: bytes = m["data"]
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
    hdrs: dict[str, list[str]] = {}
    for key, value in headers.items():
        hdrs.setdefault(key, []).append(str(value))
    _, sep, body = data.partition(b"\r\n\r\n")
    text = data.decode("utf-8", "replace")
    return {
        "ID": m["id"],
        "From": _mailhog_path(m["from"]),
        "To": [_mailhog_path(r) for r in m["to"]],
        "Content": {
            "Headers": hdrs,
            "Body": body.decode("utf-8", "replace") if sep else "",
            "Size": len(data),
        },
        "Created": m["received"],
        "Raw": {"From": m["from"], "To": m["to"], "Data": text, "Helo": m["helo"]},
    }


class Api(BaseHTTPRequestHandler):
    server_version = "pysmtp"

    def log_message(self, fmt: str, *args: object) -> None:
        log("http", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: object) -> None:
        self._send(200, json.dumps(obj, indent=1).encode())

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        with LOCK:
            messages = list(MESSAGES)
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif path == "/api/messages":
            self._json(
                [
                    {k: v for k, v in m.items() if k != "data"}
                    | {
                        "size": len(m["data"]),
                        "data": m["data"].decode("utf-8", "replace"),
                        "data_b64": base64.b64encode(m["data"]).decode(),
                    }
                    for m in messages
                ]
            )
        elif path == "/api/v2/messages":
            items = [_mailhog_item(m) for m in reversed(messages)]  # MailHog lists newest first
            self._json({"total": len(items), "count": len(items), "start": 0, "items": items})
        elif path.startswith("/api/messages/") and path.endswith("/raw"):
            wanted = path[len("/api/messages/") : -len("/raw")]
            for m in messages:
                if m["id"] == wanted:
                    self._send(200, m["data"], "message/rfc822")
                    return
            self._send(404, b'{"error": "no such message"}')
        else:
            self._send(404, b'{"error": "not found"}')

    def do_DELETE(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/api/messages", "/api/v1/messages"):
            with LOCK:
                MESSAGES.clear()
            self._send(200, b"{}")
        else:
            self._send(404, b'{"error": "not found"}')


async def main() -> None:
    http = ThreadingHTTPServer((BIND, HTTP_PORT), Api)
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server = await asyncio.start_server(handle, BIND, SMTP_PORT, limit=64 * 1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # PID 1 ignores signals it has no handler for
        loop.add_signal_handler(sig, stop.set)
    log(
        f"pysmtp ready: smtp {BIND}:{SMTP_PORT}, http {BIND}:{HTTP_PORT}, "
        f"domains {sorted(DOMAINS) or 'any'}, spool {SPOOL or 'off'}"
    )
    async with server:
        await stop.wait()
    http.shutdown()
    log("pysmtp stopped")


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
