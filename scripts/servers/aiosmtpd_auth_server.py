"""aiosmtpd with STARTTLS and AUTH on 127.0.0.1: a small local-only MTA that authenticates.

Run by scripts/servers/aiosmtpd-auth (see README.md there):

    python aiosmtpd_auth_server.py --port PORT --maildir DIR --cert FILE --key FILE [--implicit-tls]

Mail handling is that of aiosmtpd_server.py (user@ and postmaster@example.test, and a bare
"postmaster", into the Maildir DIR; 550 for anything else, no relaying). On top of it:

- STARTTLS with the given certificate (aiosmtpd's `tls_context`); with --implicit-tls the listener
  speaks TLS from the first byte instead (RFC 8314, port-465 style) and STARTTLS is not offered;
- AUTH PLAIN, LOGIN and CRAM-MD5 (RFC 2195) accepting only user@example.test / password, offered and
  accepted only over TLS (`auth_require_tls=True`: before TLS, AUTH is not advertised and is
  answered 538). AUTH is optional: unauthenticated clients may still deliver locally.

Everything else is aiosmtpd's own behaviour, deviations included (it is a test subject).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import os
import signal
import ssl
import time
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session
from aiosmtpd_server import HOSTNAME, MaildirHandler

AUTH_USER = "user@example.test"
AUTH_PASSWORD = "password"

log = logging.getLogger("aiosmtpd_auth_server")


def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                  auth_data: Any) -> AuthResult:
    """PLAIN and LOGIN: aiosmtpd hands over the decoded user name and password."""
    if isinstance(auth_data, LoginPassword):
        ok = auth_data.login == AUTH_USER.encode() and auth_data.password == AUTH_PASSWORD.encode()
        log.info("AUTH %s for %r: %s", mechanism, auth_data.login, "ok" if ok else "refused")
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


class AuthMaildirHandler(MaildirHandler):
    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 2195; the method name becomes the mechanism name CRAM-MD5."""
        if len(args) > 1:
            # RFC 4954 §4: an initial response with a server-first mechanism is refused with 501.
            await server.push("501 5.7.0 CRAM-MD5 does not take an initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{int.from_bytes(os.urandom(6), 'big')}.{int(time.time())}@{HOSTNAME}>"
        response = await server.challenge_auth(challenge)
        if response is MISSING:  # "*" or undecodable: aiosmtpd already answered 501
            return AuthResult(success=False, handled=True)
        assert isinstance(response, bytes)
        user, _, digest = response.decode("utf-8", "replace").rpartition(" ")
        expected = hmac.new(AUTH_PASSWORD.encode(), challenge.encode(), hashlib.md5).hexdigest()
        ok = user == AUTH_USER and hmac.compare_digest(digest.lower(), expected)
        log.info("AUTH CRAM-MD5 for %r: %s", user, "ok" if ok else "refused")
        if ok:
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        return AuthResult(success=False, handled=False)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(port: int, maildir: str, cert: str, key: str, implicit: bool) -> None:
    handler = AuthMaildirHandler(maildir)
    loop = asyncio.get_running_loop()
    ctx = tls_context(cert, key)

    def factory() -> SMTP:
        return SMTP(handler, hostname=HOSTNAME, enable_SMTPUTF8=True, loop=loop,
                    tls_context=None if implicit else ctx, auth_require_tls=not implicit,
                    authenticator=authenticator)

    server = await loop.create_server(factory, host="127.0.0.1", port=port, ssl=ctx if implicit else None)
    log.info("listening on 127.0.0.1:%d (%s), maildir %s", port, "implicit TLS" if implicit else "STARTTLS",
             maildir)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    log.info("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--implicit-tls", action="store_true",
                        help="TLS from the first byte (RFC 8314) instead of STARTTLS")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(args.port, args.maildir, args.cert, args.key, args.implicit_tls))


if __name__ == "__main__":
    main()
