"""A small SMTP server of the kind students write for a networks lab (standard library only).

The example students in this folder run it with different mistakes switched on, so that
`smtp-conformance grade --rubric examples/grading/rubric.yaml --targets examples/grading/students.yaml`
runs as written and gives them different grades. Not a mail server to use: it stores nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re

DOMAIN = "lab.example.test"
PATH = re.compile(r"^<([^<>\s]*)>$")


class Session:
    def __init__(self, bugs: set[str]) -> None:
        self.bugs = bugs
        self.greeted = False
        self.sender: str | None = None
        self.rcpts: list[str] = []

    def reset(self) -> None:
        self.sender, self.rcpts = None, []

    def answer(self, line: str) -> tuple[str, bool]:
        """The reply to one command line, and whether to close afterwards."""
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        if verb in ("EHLO", "HELO"):
            if not arg.strip():
                return "501 Syntax: EHLO hostname", False
            self.greeted = True
            self.reset()
            return (f"250-{DOMAIN} greets {arg.strip()}\r\n250 HELP" if verb == "EHLO" else f"250 {DOMAIN}"), False
        if verb == "QUIT":
            return f"221 {DOMAIN} closing", True
        if verb == "NOOP":
            return "250 OK", False
        if verb == "RSET":
            if "rset-keeps-rcpts" not in self.bugs:
                self.reset()
            return "250 OK", False
        if verb == "HELP":
            return "214 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP", False
        if verb == "VRFY":
            return "252 Cannot VRFY user, but will accept message", False
        if verb == "MAIL":
            return self.mail(arg), False
        if verb == "RCPT":
            return self.rcpt(arg), False
        if verb == "DATA":
            if not self.rcpts and "no-sequence-checks" not in self.bugs:
                return "503 Bad sequence of commands", False
            return "354 End data with <CR><LF>.<CR><LF>", False
        return "250 OK" if "ok-to-anything" in self.bugs else "500 Command not recognized", False

    def mail(self, arg: str) -> str:
        if not self.greeted and "no-sequence-checks" not in self.bugs:
            return "503 Send EHLO or HELO first"
        if self.sender is not None and "no-sequence-checks" not in self.bugs:
            return "503 Nested MAIL command"
        match = PATH.match(arg[5:].strip()) if arg.upper().startswith("FROM:") else None
        if match is None:
            return "501 Syntax: MAIL FROM:<address>"
        self.sender, self.rcpts = match.group(1), []
        return "250 OK"

    def rcpt(self, arg: str) -> str:
        if self.sender is None and "no-sequence-checks" not in self.bugs:
            return "503 Need MAIL before RCPT"
        match = PATH.match(arg[3:].strip()) if arg.upper().startswith("TO:") else None
        if match is None:
            return "501 Syntax: RCPT TO:<address>"
        address = match.group(1)
        if address.lower() != "postmaster" and not address.lower().endswith("@example.test"):
            return "550 No such user here"
        self.rcpts.append(address)
        return "250 OK"


async def read_data(reader: asyncio.StreamReader) -> None:
    """Everything up to the lone '.' line (the message itself is not kept)."""
    while True:
        line = await reader.readuntil(b"\n")
        if line == b".\r\n":
            return


async def serve_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bugs: set[str]) -> None:
    session = Session(bugs)
    writer.write(f"220 {DOMAIN} ESMTP labsmtp\r\n".encode())
    try:
        while True:
            raw = await reader.readuntil(b"\n")
            line = raw.decode("latin-1").rstrip("\r\n")
            reply, close = ("500 Line too long", False) if len(raw) > 512 else session.answer(line)
            writer.write(reply.encode() + b"\r\n")
            if reply.startswith("354"):
                await writer.drain()
                await read_data(reader)
                session.reset()
                writer.write(b"250 OK: queued\r\n")
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, bugs: set[str]) -> None:
    if "one-at-a-time" in bugs:
        lock = asyncio.Lock()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async with lock:
                await serve_client(reader, writer, bugs)
    else:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await serve_client(reader, writer, bugs)

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 16)
    async with server:
        await server.serve_forever()


def run(bugs: set[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "2525")))
    args = parser.parse_args()
    asyncio.run(main(args.port, bugs))
