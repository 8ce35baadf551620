"""aiosmtpd on 127.0.0.1 that behaves like a small local-only MTA.

Run by scripts/servers/aiosmtpd (see README.md there):

    python aiosmtpd_server.py --port PORT --maildir DIR

Recipients user@example.test and postmaster@example.test (and a bare
"postmaster") are accepted and each message is stored once per recipient in
the Maildir DIR, like an MTA's local delivery (Return-Path and Delivered-To
prepended, CRLF turned into LF). Unknown users of example.test get 550 5.1.1,
any other domain 550 5.7.1: it never relays and never connects anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import mailbox
import signal

from aiosmtpd.smtp import SMTP, Envelope, Session

LOCAL_DOMAIN = "example.test"
HOSTNAME = "mx.example.test"
LOCAL_USERS = frozenset({"user", "postmaster"})

log = logging.getLogger("aiosmtpd_server")


def rcpt_verdict(address: str) -> str | None:
    """None if ADDRESS is deliverable here, else the SMTP error reply."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
        if local.lower() == "postmaster":  # RFC 5321 4.5.1
            return None
        return "550 5.1.3 Unqualified recipient address not accepted"
    if domain.lower().rstrip(".") != LOCAL_DOMAIN:
        return "550 5.7.1 Relaying denied: not a local domain"
    if local.lower() not in LOCAL_USERS:
        return "550 5.1.1 User unknown"
    return None


class MaildirHandler:
    def __init__(self, maildir: str) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        verdict = rcpt_verdict(address)
        if verdict is not None:
            log.info("RCPT <%s> refused: %s", address, verdict)
            return verdict
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        body = content.replace(b"\r\n", b"\n")
        sender = envelope.mail_from or ""
        for rcpt in envelope.rcpt_tos:
            if "@" not in rcpt:
                rcpt = f"{rcpt}@{LOCAL_DOMAIN}"
            head = f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n".encode()
            key = self.maildir.add(head + body)
            log.info("delivered from=<%s> to=<%s> key=%s", sender, rcpt, key)
        return "250 2.0.0 Ok: delivered"


async def serve(port: int, maildir: str) -> None:
    handler = MaildirHandler(maildir)
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(handler, hostname=HOSTNAME, enable_SMTPUTF8=True, loop=loop)

    server = await loop.create_server(factory, host="127.0.0.1", port=port)
    log.info("listening on 127.0.0.1:%d, maildir %s", port, maildir)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    log.info("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args.port, args.maildir))


if __name__ == "__main__":
    main()
