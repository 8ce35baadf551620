"""The embedded default target: aiosmtpd configured as a small, well-behaved mail server.

Run as `python -m conformance.builtin --port PORT --maildir DIR [--domain example.test]`. It accepts mail
for its own domain (and unqualified `postmaster`), refuses to relay anywhere else, and stores each
message in a Maildir, so delivery checks have something to read.
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import signal
import socket
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

SIZE_LIMIT = 10 * 1024 * 1024


class MaildirHandler:
    def __init__(self, maildir: str, domain: str) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)
        self.domain = domain.lower()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
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
        peer = session.peer[0] if session.peer else "unknown"
        received = (f"Received: from {session.host_name} ([{peer}]) by {server.hostname} "
                    f"(smtp-conformance builtin); envelope-from <{envelope.mail_from}>\r\n").encode()
        self.maildir.add(received + content)
        return "250 2.0.0 OK: queued"


async def serve(host: str, port: int, maildir: str, domain: str, hostname: str) -> None:
    handler = MaildirHandler(maildir, domain)

    def factory() -> SMTP:
        return SMTP(handler, hostname=hostname, data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True,
                    decode_data=False, ident="smtp-conformance builtin (aiosmtpd)")

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
