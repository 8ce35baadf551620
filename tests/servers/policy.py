"""The embedded default (conformance/builtin.py: strict, conforming) plus one policy the RFCs allow, or a fault.

Policies (a conforming server configured as in production):
  none               no policy: the reference the others are compared with
  auth-required      530 5.7.0 Authentication required to MAIL/RCPT/DATA/VRFY/HELP before AUTH (RFC 4954 §6);
                     AUTH PLAIN/LOGIN with user@example.test / password, offered in plaintext and over TLS
  starttls-required  530 Must issue a STARTTLS command first to every command but EHLO, NOOP, STARTTLS, QUIT
                     (RFC 3207 §4; needs --tls-cert/--tls-key)
Every mode offers STARTTLS when given --tls-cert/--tls-key; only auth-required offers AUTH.
  greylist           450 4.7.1 to the first RCPT of every transaction (later ones are accepted)
Faults (prove the downgrade of policy replies is not a loophole):
  all-530            530 5.7.0 to every command but QUIT
  all-rcpt-450       450 4.7.1 to every RCPT
  rcpt-before-mail   250 to RCPT before MAIL (RFC 5321 §4.3.2 wants 503)
  slow-data-end      the reply to the end of the message data comes after --delay seconds
  auth-any           AUTH (over TLS) accepts any credentials, as development catch-alls (MailHog) do

Run: python -m tests.servers.policy --port P --maildir DIR --mode MODE [--tls-cert F --tls-key F] [--delay S]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import ssl
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from conformance.builtin import SIZE_LIMIT, ConformingSMTP, MaildirHandler, serve_until_stopped

MODES = ("none", "auth-required", "starttls-required", "greylist", "all-530", "all-rcpt-450", "rcpt-before-mail",
         "slow-data-end", "auth-any")
USER, PASSWORD = "user@example.test", "password"


def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == USER.encode() and data.password == PASSWORD.encode()
    ok = ok or getattr(server, "mode", "") == "auth-any"
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


class PolicyHandler(MaildirHandler):
    def __init__(self, maildir: str, domain: str, mode: str, delay: float) -> None:
        super().__init__(maildir, domain)
        self.mode = mode
        self.delay = delay

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        responses = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if self.mode in ("auth-required", "auth-any"):
            return responses
        kept = [r for r in responses if not r[4:].upper().startswith("AUTH")]  # no mechanisms left: no AUTH
        return [*kept[:-1], "250 " + kept[-1][4:]]

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.mode == "all-rcpt-450" or (self.mode == "greylist" and not getattr(envelope, "greylisted", False)):
            envelope.greylisted = True  # type: ignore[attr-defined]
            return "450 4.7.1 Greylisted, please try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.mode == "slow-data-end":
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class PolicySMTP(ConformingSMTP):
    """Also corrects what aiosmtpd 1.4 gets wrong in AUTH and STARTTLS (the builtin offers neither)."""

    mode = ""
    line_length_limit = 12288 + 2  # RFC 4954 §4: an AUTH line may be 12288 octets

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol:  # RFC 3207 §4.2: no second STARTTLS inside TLS
            await self.push("503 5.5.1 TLS already active")
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        mechanism, sep, rest = (arg or "").partition(" ")
        await super().smtp_AUTH(mechanism.upper() + sep + rest)  # mechanism names are case-insensitive (§4)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        # RFC 4616 §2: an authorization identity the server cannot act as fails; aiosmtpd ignores it
        if len(args) == 2:
            try:
                authzid, login, _password = base64.b64decode(args[1], validate=True).split(b"\0")
            except (ValueError, binascii.Error):
                authzid = login = b""
            if authzid and authzid != login:
                await self.push("535 5.7.8 Authentication credentials invalid")
                return AuthResult(success=False, handled=True)
        return await super().auth_PLAIN(_, args)

    async def smtp_RCPT(self, arg: str) -> None:
        if self.mode == "rcpt-before-mail" and self.envelope.mail_from is None:
            await self.push("250 2.1.5 OK")  # the fault: no 503 for a bad sequence
            return
        await super().smtp_RCPT(arg)

    async def push(self, status: str | bytes) -> None:  # type: ignore[override]
        if isinstance(status, bytes):  # AUTH challenges come as bytes; the builtin's push expects str
            status = status.decode("ascii")
        if self.mode == "all-530" and not status.startswith(("220 ", "221")):
            status = "530 5.7.0 Authentication required"
        await super().push(status)


async def serve(args: Any) -> None:
    handler = PolicyHandler(args.maildir, args.domain, args.mode, args.delay)
    tls: ssl.SSLContext | None = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    def factory() -> SMTP:
        server = PolicySMTP(
            handler, hostname=args.hostname, data_size_limit=SIZE_LIMIT, enable_SMTPUTF8=True, decode_data=False,
            ident="smtp-conformance policy server (aiosmtpd)", tls_context=tls,
            require_starttls=args.mode == "starttls-required",
            auth_required=args.mode == "auth-required", auth_require_tls=args.mode != "auth-required",
            authenticator=authenticator,
            # AUTH only where it is the policy: aiosmtpd's AUTH lacks the MAIL AUTH= parameter (RFC 4954 §5)
            auth_exclude_mechanism=[] if args.mode in ("auth-required", "auth-any") else ["LOGIN", "PLAIN"])
        server.mode = args.mode
        return server

    await serve_until_stopped(factory, args.host, args.port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.policy")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--domain", default="example.test")
    parser.add_argument("--hostname", default="mx.example.test")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--delay", type=float, default=5.0)
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
