"""A deliberately configurable SMTP server for the suite's own tests.

By default this is a small but correct RFC 5321 server.  Individual faults
can be switched on (``--fault NAME``, repeatable, several at once) so that the
conformance suite can prove that it catches each kind of broken server.

Standard library only.  One thread per connection (``socketserver``), raw
sockets, a hand-written line reader (so that bare CR / bare LF, pipelined
bytes and the STARTTLS buffer can be controlled exactly).

Usage::

    python -m tests.servers.faulty --port 2525 [--host 127.0.0.1]
        [--fault NAME ...] [--maildir DIR] [--domain example.test]
        [--hostname faulty.example.test] [--idle-timeout 300]
        [--tls-cert FILE --tls-key FILE]

Nothing is printed to stdout; errors go to stderr.  SIGTERM / SIGINT stop the
server cleanly (exit status 0).

In-process::

    from tests.servers.faulty import start_in_thread
    host, port, stop = start_in_thread(["lf-ends-data"], maildir=tmp_path)
    ...
    stop()

Default behaviour (RFC 5321 / 1870 / 2034 / 2920 / 6152)
-------------------------------------------------------
* Greeting ``220 <hostname> ESMTP faulty``.
* ``EHLO`` -> ``250-<hostname>``, ``250-PIPELINING``, ``250-SIZE 10485760``,
  ``250-8BITMIME``, ``250-ENHANCEDSTATUSCODES``, ``250 HELP``.  ``HELO`` ->
  ``250 <hostname>``.  Without an argument both answer 501.  EHLO/HELO reset
  the mail transaction.
* Enhanced status codes (RFC 2034/3463) on every 2xx/4xx/5xx reply line
  except the greeting and the replies to HELO/EHLO (RFC 2034 section 3 exempts
  exactly those; it also requires the codes whether or not EHLO was used, so
  they are sent before EHLO too).  Their class always matches the reply.
* ``MAIL``/``RCPT``/``DATA`` before HELO/EHLO -> 503.  RCPT before MAIL, DATA
  before a successful RCPT, nested MAIL -> 503.  RSET, NOOP, HELP, VRFY, EXPN,
  QUIT are processed normally before EHLO (RFC 5321 section 4.1.4).
* Paths are parsed with the RFC 5321 section 4.1.2 grammar (dot-string or
  quoted local-part, domain or address literal, source routes accepted and
  ignored); syntax errors -> 501.  ``MAIL FROM:<>`` is accepted.  A space after
  ``FROM:``/``TO:`` is tolerated.  MAIL parameters ``SIZE=`` and ``BODY=7BIT|
  8BITMIME`` are known; any other MAIL or RCPT parameter -> 555; a malformed
  parameter -> 501.  ``SIZE=`` above 10485760 -> 552.
* Recipients: ``<postmaster>`` (any case, unqualified) and any local-part at
  the configured domain (``--domain``, case-insensitive, so
  ``postmaster@<domain>`` too) are accepted; any other domain -> ``550 5.7.1``
  relaying denied.  Up to 1000 recipients, the next ones -> ``452 4.5.3``.
* ``DATA`` -> 354; the body ends only at ``<CRLF>.<CRLF>``.  Bare CR and bare
  LF are ordinary data and never end a line, so ``<LF>.<LF>`` etc. do not end
  the data.  One leading dot is removed from dot-stuffed lines.  Then 250
  (``552 5.3.4`` if the body exceeded SIZE) and the transaction is reset.
  Text lines longer than 1000 octets are *accepted* (RFC 5321 section
  4.5.3.1 asks for no limits where possible); only SIZE bounds the body.
* With ``--maildir DIR`` every accepted message is written to ``DIR/new``
  (``tmp`` then rename).  The file holds a ``Return-Path:`` and a
  ``Received:`` trace header (section 4.4) followed by the data exactly as
  received after dot-unstuffing: CRLF line ends, bare CR / LF / NUL kept.
* ``RSET`` (no argument, else 501), ``NOOP`` (argument ignored) -> 250;
  ``VRFY x`` -> 252 (501 without argument); ``EXPN`` -> 502; ``TURN``,
  ``SEND``, ``SOML``, ``SAML`` -> 502; ``HELP`` -> 214 (multi-line);
  ``QUIT`` -> 221 then a clean close (an argument to QUIT is ignored).
  ``STARTTLS`` is not advertised by default and answers 502.
* Unknown verb -> 500.  Verbs are case-insensitive.  A command line longer
  than 512 octets (CRLF included) -> 500 and the session stays usable.  A
  command line that contains a bare CR or LF -> 500 (it is not split there).
* Idle timeout 300 s (``--idle-timeout``): ``421 4.4.2`` then close.

Faults
------
Connection level (the first that applies wins):

``no-greeting``
    Accept the connection and never send anything; input is read and
    discarded, the socket stays open until the client closes (or idle timeout).
``reset-on-connect``
    TCP RST (SO_LINGER 0) immediately on accept.
``close-on-connect``
    Clean close (FIN) immediately, no greeting.
``flood``
    Right after connect send ``A`` * 64 KiB chunks forever (no CRLF) until the
    client goes away.
``endless-multiline``
    Greeting is ``220-<hostname> xxx`` repeated forever.
``garbage``
    Greeting is ``\\x00\\xff\\xfe garbage\\r\\n``; the session then works.
``refuse-554``
    Greeting ``554 no service``; 503 to everything but QUIT (221 + close).
``reset``
    Normal greeting; after reading the first command line close with RST.

Reply formatting:

``xss``
    Banner and every reply text carry ``<script>alert("x")</script> '"&``
    (codes unchanged: still conformant).  In the EHLO reply only the first
    line (after the domain) carries it, keywords stay parseable.
``slow``
    Every reply is sent 1 byte per 0.5 s.
``wrong-codes``
    Every 4xx/5xx reply (except the 421 idle timeout) becomes
    ``250 2.0.0``: unknown commands, bad sequences, syntax errors, refusals.
    The server state does not change (an erroneous DATA is not entered).
``bare-lf-replies``
    Reply lines end with LF instead of CRLF.
``mixed-multiline``
    EHLO reply lines carry different codes: ``250-``, ``251-``, ``252-`` ...,
    last line ``250 HELP``.
``no-domain-ehlo``
    First EHLO line is ``250-Hello`` (no domain).
``no-enhanced``
    ENHANCEDSTATUSCODES advertised, but no reply carries an enhanced code.
``enhanced-mismatch``
    Enhanced code class differs from the reply class (2 -> 5, 4 -> 2, 5 -> 2,
    e.g. ``550 2.7.1``, ``250 5.0.0``).
``reply-line-too-long``
    The HELP reply is a single line of 600 octets (CRLF included).

Sequencing / state:

``no-sequencing``
    RCPT before MAIL -> 250, DATA before RCPT -> 354 (the message is stored),
    nested MAIL -> 250.
``no-helo-check``
    MAIL/RCPT/DATA accepted before HELO/EHLO (INFO per the RFC, not a FAIL).
``strict-pre-helo``
    RSET, NOOP, HELP, VRFY and EXPN before EHLO/HELO -> 503 (SHOULD violation).
``no-rset-state``
    RSET answers 250 but does not clear the transaction.
``ehlo-no-reset``
    EHLO/HELO in mid-transaction does not reset the transaction.
``data-no-reset``
    After the end-of-data 250 the transaction (sender, recipients) remains.
``rcpt-aborts-transaction``
    A refused RCPT (any 4xx/5xx) clears the whole transaction.
``no-quit-close``
    QUIT answers 221 but the connection stays open (commands still answered).
``quit-no-reply``
    QUIT closes the connection (FIN) without sending 221.

Addresses / limits:

``no-postmaster``
    ``postmaster`` (unqualified or at the domain) refused with ``550 5.1.1``.
``no-null-sender``
    ``MAIL FROM:<>`` refused with ``553 5.1.7``.
``short-limits``
    Local-parts over 32 octets and domains over 64 -> 501, command lines over
    256 octets -> 500 (below RFC 5321 section 4.5.3.1's minimums 64/255/512).
``max-10-rcpts``
    The 11th and later recipients -> ``550 5.5.3`` (RFC: at least 100, 452).
``size-not-enforced``
    Advertises ``SIZE 1000`` but accepts bigger ``SIZE=`` and bodies.
``no-998``
    Body lines of 998 octets or more (CRLF excluded) make the message refused
    at end of data with ``554 5.6.0`` (RFC: 998 + CRLF must be accepted).

Hostile and slow (for the bounds of issue 15: memory, output, time):

``flood-after-ehlo``
    Greeting and EHLO as usual; any later command is answered with up to
    200 MB of ``250-`` lines of 1008 octets of binary bytes, then RST.
``stall-at-data``
    Answers normally until ``DATA``/``BDAT``, then never again.
``slow-replies``
    Correct, but each reply comes whole after a 0.5-2 s delay.
``connection-limit``
    More than 2 connections at once get ``421 Too many concurrent SMTP
    connections`` and a close, as Exim does over ``smtp_accept_max``.

Data / transport:

``lf-ends-data``
    In DATA, lines are split on bare LF (a CR before it is dropped), so
    ``<LF>.<LF>``, ``<LF>.<CRLF>``, ``<CRLF>.<LF>`` end the data (SMTP
    smuggling).  Commands are still CRLF-only.
``bare-lf-lines``
    Bare LF ends a line in commands *and* in DATA.
``no-unstuff``
    The leading dot of dot-stuffed lines is stored as received.
``pipelining-drop``
    PIPELINING advertised, but after each command line the rest of the read
    buffer is discarded: only the first command of each packet is answered.
``starttls``
    Correct STARTTLS (RFC 3207): advertised in EHLO (not after TLS); 501
    with an argument; 503 before EHLO and when already in TLS; ``220 2.0.0``
    then handshake; buffered plaintext is discarded; the session is reset
    and EHLO is required again.  Certificate: ``--tls-cert``/``--tls-key``,
    otherwise a self-signed one generated with the ``openssl`` command.
``starttls-inject``
    Like ``starttls``, but plaintext that arrived in the same read as the
    STARTTLS line is kept and executed after the handshake (CVE-2011-0411).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import email.utils
import ipaddress
import os
import re
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FAULTS", "ServerConfig", "FaultyServer", "start_in_thread", "main"]

FAULTS: dict[str, str] = {
    "no-greeting": "accept and never send anything, socket stays open",
    "refuse-554": "greet with 554, answer 503 to everything but QUIT",
    "flood": "send endless 'A' bytes (no CRLF) right after connect",
    "endless-multiline": "greeting is an endless 220- multi-line reply",
    "reset": "RST right after reading the first command",
    "reset-on-connect": "RST immediately on accept",
    "close-on-connect": "clean close (FIN) immediately, no greeting",
    "xss": "banner and reply texts carry HTML/script and quotes",
    "garbage": "binary garbage greeting",
    "slow": "every reply sent 1 byte per 0.5 s",
    "wrong-codes": "250 to every error (unknown command, bad sequence, ...)",
    "bare-lf-replies": "reply lines end with LF instead of CRLF",
    "mixed-multiline": "EHLO lines carry different codes (250-, 251-, ...)",
    "no-domain-ehlo": "first EHLO line is '250-Hello' (no domain)",
    "no-sequencing": "RCPT before MAIL, DATA before RCPT, nested MAIL accepted",
    "lf-ends-data": "bare LF splits DATA lines: <LF>.<LF> ends data (smuggling)",
    "bare-lf-lines": "bare LF ends lines in commands and DATA",
    "no-unstuff": "leading dot of dot-stuffed lines is kept",
    "short-limits": "local-part > 32, domain > 64 -> 501; command > 256 -> 500",
    "max-10-rcpts": "recipients after the 10th -> 550",
    "no-quit-close": "QUIT answers 221 but the connection stays open",
    "quit-no-reply": "QUIT closes without a 221",
    "no-postmaster": "postmaster refused with 550",
    "no-null-sender": "MAIL FROM:<> refused with 553",
    "no-helo-check": "MAIL/RCPT/DATA accepted before HELO/EHLO",
    "strict-pre-helo": "RSET/NOOP/HELP/VRFY/EXPN before EHLO -> 503",
    "no-rset-state": "RSET answers 250 but keeps the transaction",
    "ehlo-no-reset": "EHLO/HELO in mid-transaction keeps the transaction",
    "data-no-reset": "transaction not reset after the end-of-data 250",
    "no-enhanced": "ENHANCEDSTATUSCODES advertised but never used",
    "enhanced-mismatch": "enhanced code class differs from reply class",
    "starttls": "advertise and implement STARTTLS correctly",
    "starttls-inject": "STARTTLS that executes pipelined plaintext (CVE-2011-0411)",
    "pipelining-drop": "only the first command of each packet is answered",
    "size-not-enforced": "advertises SIZE 1000 but accepts bigger",
    "reply-line-too-long": "HELP reply is one 600-octet line",
    "rcpt-aborts-transaction": "a refused RCPT clears the transaction",
    "no-998": "body lines of 998 octets or more refused",
    "flood-after-ehlo": "greeting and EHLO as usual, then 200 MB of over-long binary reply lines to any command",
    "stall-at-data": "answers normally until DATA, then never answers again (reads and discards)",
    "slow-replies": "correct, but every reply comes after a 0.5-2 s delay",
    "connection-limit": "more than 2 connections at once: 421 too many connections, close (as Exim)",
}

XSS = '<script>alert("x")</script> \'"&'
DEFAULT_HOSTNAME = "faulty.example.test"
DEFAULT_SIZE = 10485760
SMALL_SIZE = 1000
MAX_RECIPIENTS = 1000
COMMAND_LINE_MAX = 512  # octets, CRLF included (RFC 5321 4.5.3.1.4)
SLOW_DELAY = 0.5
FLOOD_CHUNK = b"A" * 65536
FLOOD_AFTER_EHLO_BYTES = 200 * 1024 * 1024  # what flood-after-ehlo is ready to send per connection
FLOOD_LINES = (b"250-" + b"\x00\xff\x1b" * 334 + b"\r\n") * 64  # 1008-octet lines, escaped 4x
SLOW_REPLY_DELAYS = (0.5, 1.25, 2.0, 0.75, 1.5)  # slow-replies cycles through these
CONNECTION_LIMIT = 2  # connection-limit: concurrent sessions served (Exim's smtp_accept_max is 20)
_HARD_BODY_CAP = 64 * 1024 * 1024  # memory guard when SIZE is not enforced

# --------------------------------------------------------------------------
# RFC 5321 section 4.1.2 / 4.1.3 grammar
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_SUB_DOMAIN = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = rf"{_SUB_DOMAIN}(?:\.{_SUB_DOMAIN})*"
_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_PATH_RE = re.compile(
    rf"<(?:(?P<adl>@{_DOMAIN}(?:,@{_DOMAIN})*):)?"
    rf"(?P<local>{_DOT_STRING}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_LITERAL})>"
)
_POSTMASTER_RE = re.compile(r"<postmaster>", re.IGNORECASE)
_PARAM_RE = re.compile(r"(?P<key>[A-Za-z0-9][A-Za-z0-9-]*)(?:=(?P<value>[\x21-\x3c\x3e-\x7e]+))?")
_LDH_TAG = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]")


def _valid_literal(literal: str) -> bool:
    """address-literal = "[" ( IPv4 / IPv6 / General-address-literal ) "]"."""
    inner = literal[1:-1]
    if inner[:5].lower() == "ipv6:":
        try:
            ipaddress.IPv6Address(inner[5:])
        except ValueError:
            return False
        return True
    if ":" in inner:
        tag, _, content = inner.partition(":")
        return bool(_LDH_TAG.fullmatch(tag)) and bool(content)
    parts = inner.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def _split_path(arg: str) -> tuple[str, str] | None:
    """Split ``<path> params`` at the closing '>' (quotes respected)."""
    if not arg.startswith("<"):
        return None
    quoted = escaped = False
    for i, ch in enumerate(arg):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            rest = arg[i + 1 :]
            if rest and not rest.startswith(" "):
                return None
            return arg[: i + 1], rest.strip(" ")
    return None


def _parse_params(rest: str) -> dict[str, str | None] | None:
    params: dict[str, str | None] = {}
    for word in rest.split(" "):
        if not word:
            continue
        m = _PARAM_RE.fullmatch(word)
        if not m:
            return None
        key = m.group("key").upper()
        if key in params:
            return None
        params[key] = m.group("value")
    return params


# --------------------------------------------------------------------------
# TLS material


_CERT_LOCK = threading.Lock()
_CERT_CACHE: dict[str, tuple[str, str]] = {}


def _self_signed(hostname: str) -> tuple[str, str]:
    """Generate (once per process and hostname) a self-signed cert with openssl."""
    with _CERT_LOCK:
        if hostname in _CERT_CACHE:
            return _CERT_CACHE[hostname]
        tmp = tempfile.mkdtemp(prefix="faulty-tls-")
        atexit.register(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", key, "-out", cert, "-days", "2",
                "-subj", f"/CN={hostname}", "-addext", f"subjectAltName=DNS:{hostname}",
            ],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        _CERT_CACHE[hostname] = (cert, key)
        return cert, key


# --------------------------------------------------------------------------


@dataclass
class ServerConfig:
    faults: frozenset[str] = frozenset()
    hostname: str = DEFAULT_HOSTNAME
    domain: str = "example.test"
    maildir: Path | None = None
    idle_timeout: float = 300.0
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        self.faults = frozenset(self.faults)
        if self.maildir is not None:
            self.maildir = Path(self.maildir)
            for sub in ("tmp", "new", "cur"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        if self.faults & {"starttls", "starttls-inject"} and self.tls_context is None:
            cert, key = self.tls_cert, self.tls_key
            if not cert:
                cert, key = _self_signed(self.hostname)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key or None)
            self.tls_context = ctx

    @property
    def max_size(self) -> int:
        return SMALL_SIZE if "size-not-enforced" in self.faults else DEFAULT_SIZE


class _Closed(Exception):
    """The peer closed the connection (or the server is stopping)."""


class _Reader:
    """Buffered line reader over a (possibly TLS) socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _Closed
        self.buf += data

    def read_line(self, limit: int, lf: bool) -> tuple[bytes, bool]:
        """One line without its terminator, and whether it exceeded ``limit``
        octets (terminator counted as 2).  Lines end at CRLF, or at LF (a CR
        before it dropped) if ``lf``.  Over-long input is discarded."""
        term = b"\n" if lf else b"\r\n"
        too_long = False
        start = 0
        while True:
            idx = self.buf.find(term, start)
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[: idx + len(term)]
                if lf and line.endswith(b"\r"):
                    line = line[:-1]
                if too_long or len(line) + 2 > limit:
                    return b"", True
                return line, False
            if len(self.buf) > limit:
                too_long = True
                del self.buf[:-1]
            start = max(0, len(self.buf) - 1)
            self._fill()

    def read_piece(self, max_piece: int, lf: bool) -> tuple[bytes, bool]:
        """A data line, or a piece of one if it is long: (bytes, complete)."""
        term = b"\n" if lf else b"\r\n"
        start = 0
        while True:
            idx = self.buf.find(term, start)
            if idx >= 0:
                line = bytes(self.buf[:idx])
                del self.buf[: idx + len(term)]
                if lf and line.endswith(b"\r"):
                    line = line[:-1]
                return line, True
            if len(self.buf) > max_piece:
                piece = bytes(self.buf[:-1])  # the last byte may start a CRLF
                del self.buf[:-1]
                return piece, False
            start = max(0, len(self.buf) - 1)
            self._fill()


def _rst(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _graceful_close(sock: socket.socket, drain: float = 0.5) -> None:
    """FIN, then drain what the peer still sends (so close() sends no RST)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + drain
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                break
    except OSError:
        pass
    finally:
        sock.close()


class _Session:
    """One SMTP connection."""

    def __init__(self, server: FaultyServer, sock: socket.socket, peer: tuple) -> None:
        self.server = server
        self.cfg = server.config
        self.f = self.cfg.faults
        self.sock = sock
        self.peer = peer
        self.reader = _Reader(sock)
        self.helo: str | None = None
        self.esmtp = False
        self.tls = False
        self.mail_from: str | None = None  # None: no transaction; "": null path
        self.rcpts: list[str] = []
        self.quit = False

    # ---------------------------------------------------------------- output
    def _send(self, data: bytes) -> None:
        if "slow-replies" in self.f:
            self.replies_sent = getattr(self, "replies_sent", 0) + 1
            if self.server.stopping.wait(SLOW_REPLY_DELAYS[self.replies_sent % len(SLOW_REPLY_DELAYS)]):
                raise _Closed
            self.sock.sendall(data)
        elif "slow" in self.f:
            for i in range(len(data)):
                if self.server.stopping.is_set():
                    raise _Closed
                self.sock.sendall(data[i : i + 1])
                if i + 1 < len(data) and self.server.stopping.wait(SLOW_DELAY):
                    raise _Closed
        else:
            self.sock.sendall(data)

    def _eol(self) -> str:
        return "\n" if "bare-lf-replies" in self.f else "\r\n"

    def send_lines(self, lines: list[str]) -> None:
        eol = self._eol()
        self._send("".join(line + eol for line in lines).encode("utf-8", "replace"))

    def reply(self, code: int, enh: str | None, *texts: str) -> None:
        """Send a (multi-line) reply; ``enh`` is the enhanced status code."""
        if "wrong-codes" in self.f and code >= 400 and code != 421:
            code, enh = 250, "2.0.0"
        use_enh = bool(enh) and code // 100 in (2, 4, 5) and "no-enhanced" not in self.f
        if use_enh and "enhanced-mismatch" in self.f:
            enh = {"2": "5", "4": "2", "5": "2"}[enh[0]] + enh[1:]
        out = []
        for i, text in enumerate(texts):
            if use_enh:
                text = f"{enh} {text}"
            if "xss" in self.f:
                text = f"{text} {XSS}"
            sep = " " if i == len(texts) - 1 else "-"
            out.append(f"{code}{sep}{text}")
        self.send_lines(out)

    # ------------------------------------------------------------ lifecycle
    def run(self) -> None:
        f = self.f
        if "reset-on-connect" in f:
            _rst(self.sock)
            return
        if "close-on-connect" in f:
            _graceful_close(self.sock)
            return
        self.sock.settimeout(self.cfg.idle_timeout)
        if "connection-limit" in f and not self.server.admit():
            with contextlib.suppress(OSError):
                self.sock.sendall(b"421 Too many concurrent SMTP connections; please try again later\r\n")
            _graceful_close(self.sock)
            return
        if "no-greeting" in f:
            with contextlib.suppress(OSError, _Closed):
                while not self.server.stopping.is_set():
                    self.reader._fill()
                    self.reader.buf.clear()
            self.sock.close()
            return
        if "flood" in f:
            with contextlib.suppress(OSError):
                while not self.server.stopping.is_set():
                    self.sock.sendall(FLOOD_CHUNK)
            _rst(self.sock)
            return
        if "endless-multiline" in f:
            block = f"220-{self.cfg.hostname} xxx{self._eol()}".encode() * 1000
            with contextlib.suppress(OSError):
                while not self.server.stopping.is_set():
                    self.sock.sendall(block)
            _rst(self.sock)
            return
        try:
            self._greet()
            self._command_loop()
        except _Closed:
            self.sock.close()
        except TimeoutError:
            with contextlib.suppress(OSError, _Closed):
                self.reply(421, "4.4.2", f"{self.cfg.hostname} Idle timeout, closing connection")
            _graceful_close(self.sock)
        except OSError:
            self.sock.close()

    def _greet(self) -> None:
        if "garbage" in self.f:
            self._send(b"\x00\xff\xfe garbage" + self._eol().encode())
        elif "refuse-554" in self.f:
            self.reply(554, None, "no service")
        else:
            self.reply(220, None, f"{self.cfg.hostname} ESMTP faulty")

    def _command_loop(self) -> None:
        f = self.f
        lf = "bare-lf-lines" in f
        limit = 256 if "short-limits" in f else COMMAND_LINE_MAX
        first = True
        while True:
            line, too_long = self.reader.read_line(limit, lf)
            if "pipelining-drop" in f:
                self.reader.buf.clear()
            if first and "reset" in f:
                _rst(self.sock)
                return
            first = False
            if "refuse-554" in f:
                if not too_long and line.split(b" ", 1)[0].upper() == b"QUIT":
                    self.reply(221, "2.0.0", f"{self.cfg.hostname} Bye")
                    _graceful_close(self.sock)
                    return
                self.reply(503, "5.5.1", "Bad sequence of commands: no service")
                continue
            if too_long:
                self.reply(500, "5.5.2", "Line too long")
                continue
            text = line.decode("latin-1")
            if "\r" in text or "\n" in text:
                self.reply(500, "5.5.2", "Bare CR or LF in command line")
                continue
            verb, _, arg = text.partition(" ")
            if self._hostile(verb.upper()):
                return
            handler = getattr(self, f"cmd_{verb.upper()}", None) if verb.isalpha() else None
            if not text.strip():
                self.reply(500, "5.5.2", "Syntax error: empty command")
            elif handler is None:
                self.reply(500, "5.5.1", "Command unrecognized")
            else:
                handler(arg.strip(" "))
            if self.quit:
                return

    def _hostile(self, verb: str) -> bool:
        """flood-after-ehlo and stall-at-data: True when the session has turned hostile for good."""
        if "flood-after-ehlo" in self.f and self.esmtp and verb not in ("EHLO", "HELO"):
            sent = 0
            with contextlib.suppress(OSError):
                while sent < FLOOD_AFTER_EHLO_BYTES and not self.server.stopping.is_set():
                    self.sock.sendall(FLOOD_LINES)
                    sent += len(FLOOD_LINES)
            _rst(self.sock)
            return True
        if "stall-at-data" in self.f and verb in ("DATA", "BDAT"):
            with contextlib.suppress(OSError, _Closed):
                while not self.server.stopping.is_set():
                    self.reader._fill()
                    self.reader.buf.clear()
            self.sock.close()
            return True
        return False

    # ------------------------------------------------------------- helpers
    def _reset_tx(self) -> None:
        self.mail_from = None
        self.rcpts = []

    def _need_helo(self) -> bool:
        """For MAIL/RCPT/DATA: 503 unless HELO/EHLO was given."""
        if self.helo is None and "no-helo-check" not in self.f:
            self.reply(503, "5.5.1", "Bad sequence of commands: send HELO/EHLO first")
            return True
        return False

    def _strict_pre_helo(self) -> bool:
        if self.helo is None and "strict-pre-helo" in self.f:
            self.reply(503, "5.5.1", "Bad sequence of commands: send HELO/EHLO first")
            return True
        return False

    def _tls_offered(self) -> bool:
        return bool(self.f & {"starttls", "starttls-inject"}) and not self.tls

    def _check_limits(self, local: str, domain: str) -> bool:
        short = "short-limits" in self.f
        return not (short and (len(local) > 32 or len(domain) > 64))

    # ------------------------------------------------------------ commands
    def cmd_EHLO(self, arg: str) -> None:
        if not arg:
            self.reply(501, "5.5.4", "Syntax: EHLO hostname")
            return
        if "ehlo-no-reset" not in self.f:
            self._reset_tx()
        self.helo, self.esmtp = arg.split(" ")[0], True
        first = "Hello" if "no-domain-ehlo" in self.f else self.cfg.hostname
        if "xss" in self.f:
            first = f"{first} {XSS}"
        lines = [first, "PIPELINING", f"SIZE {self.cfg.max_size}", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self._tls_offered():
            lines.append("STARTTLS")
        lines.append("HELP")
        out = []
        for i, text in enumerate(lines):
            last = i == len(lines) - 1
            code = 250 + i if "mixed-multiline" in self.f and not last else 250
            out.append(f"{code}{' ' if last else '-'}{text}")
        self.send_lines(out)

    def cmd_HELO(self, arg: str) -> None:
        if not arg:
            self.reply(501, "5.5.4", "Syntax: HELO hostname")
            return
        if "ehlo-no-reset" not in self.f:
            self._reset_tx()
        self.helo, self.esmtp = arg.split(" ")[0], False
        self.reply(250, None, self.cfg.hostname)

    def cmd_MAIL(self, arg: str) -> None:
        if self._need_helo():
            return
        if self.mail_from is not None and "no-sequencing" not in self.f:
            self.reply(503, "5.5.1", "Bad sequence of commands: nested MAIL command")
            return
        if arg[:5].upper() != "FROM:":
            self.reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
            return
        split = _split_path(arg[5:].lstrip(" "))
        if split is None:
            self.reply(501, "5.1.7", "Bad sender address syntax")
            return
        path, rest = split
        if path == "<>":
            sender = ""
        else:
            m = _PATH_RE.fullmatch(path)
            if not m or (m["domain"].startswith("[") and not _valid_literal(m["domain"])):
                self.reply(501, "5.1.7", "Bad sender address syntax")
                return
            if not self._check_limits(m["local"], m["domain"]):
                self.reply(501, "5.1.7", "Sender address too long")
                return
            sender = f"{m['local']}@{m['domain']}"
        params = _parse_params(rest)
        if params is None:
            self.reply(501, "5.5.4", "Syntax error in MAIL parameters")
            return
        for key, value in params.items():
            if key == "SIZE":
                if value is None or not value.isdigit() or len(value) > 20:
                    self.reply(501, "5.5.4", "Syntax: SIZE=<octets>")
                    return
                if int(value) > self.cfg.max_size and "size-not-enforced" not in self.f:
                    self.reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
                    return
            elif key == "BODY":
                if value is None or value.upper() not in ("7BIT", "8BITMIME"):
                    self.reply(501, "5.5.4", "Syntax: BODY=7BIT|8BITMIME")
                    return
            else:
                self.reply(555, "5.5.4", f"MAIL parameter {key} not recognized")
                return
        if sender == "" and "no-null-sender" in self.f:
            self.reply(553, "5.1.7", "Null sender not allowed")
            return
        self.mail_from = sender
        if "no-sequencing" not in self.f:
            self.rcpts = []
        self.reply(250, "2.1.0", "Sender ok")

    def cmd_RCPT(self, arg: str) -> None:
        if self._need_helo():
            return
        if self.mail_from is None and "no-sequencing" not in self.f:
            self.reply(503, "5.5.1", "Bad sequence of commands: need MAIL before RCPT")
            return
        code, enh, text = self._rcpt(arg)
        if code >= 400 and "rcpt-aborts-transaction" in self.f:
            self._reset_tx()
        self.reply(code, enh, text)

    def _rcpt(self, arg: str) -> tuple[int, str, str]:
        if arg[:3].upper() != "TO:":
            return 501, "5.5.4", "Syntax: RCPT TO:<address>"
        split = _split_path(arg[3:].lstrip(" "))
        if split is None:
            return 501, "5.1.3", "Bad recipient address syntax"
        path, rest = split
        if _POSTMASTER_RE.fullmatch(path):
            local, domain = "postmaster", None
        else:
            m = _PATH_RE.fullmatch(path)
            if not m or (m["domain"].startswith("[") and not _valid_literal(m["domain"])):
                return 501, "5.1.3", "Bad recipient address syntax"
            local, domain = m["local"], m["domain"]
            if not self._check_limits(local, domain):
                return 501, "5.1.3", "Recipient address too long"
        params = _parse_params(rest)
        if params is None:
            return 501, "5.5.4", "Syntax error in RCPT parameters"
        if params:
            return 555, "5.5.4", f"RCPT parameter {next(iter(params))} not recognized"
        if "max-10-rcpts" in self.f and len(self.rcpts) >= 10:
            return 550, "5.5.3", "Too many recipients"
        if len(self.rcpts) >= MAX_RECIPIENTS:
            return 452, "4.5.3", "Too many recipients"
        local_domain = domain is None or domain.lower() == self.cfg.domain.lower()
        if local.lower() == "postmaster" and local_domain and "no-postmaster" in self.f:
            return 550, "5.1.1", "Mailbox unavailable"
        if domain is not None and not local_domain:
            return 550, "5.7.1", "Relaying denied"
        self.rcpts.append(f"{local}@{domain or self.cfg.domain}")
        return 250, "2.1.5", "Recipient ok"

    def cmd_DATA(self, arg: str) -> None:
        if arg:
            self.reply(501, "5.5.4", "Syntax: DATA")
            return
        if self._need_helo():
            return
        if "no-sequencing" not in self.f:
            if self.mail_from is None:
                self.reply(503, "5.5.1", "Bad sequence of commands: need MAIL command")
                return
            if not self.rcpts:
                self.reply(503, "5.5.1", "Bad sequence of commands: need RCPT command")
                return
        self.reply(354, None, "End data with <CR><LF>.<CR><LF>")
        self._read_data()

    def _read_data(self) -> None:
        f = self.f
        lf = bool(f & {"lf-ends-data", "bare-lf-lines"})
        unstuff = "no-unstuff" not in f
        enforce = "size-not-enforced" not in f
        cap = self.cfg.max_size if enforce else _HARD_BODY_CAP
        parts: list[bytes] = []
        size = line_len = 0
        at_start, too_big, long_line = True, False, False
        while True:
            piece, complete = self.reader.read_piece(65536, lf)
            if at_start and complete and piece == b".":
                break
            line_len = (0 if at_start else line_len) + len(piece)
            if complete and line_len >= 998:
                long_line = True
            if at_start and unstuff and piece.startswith(b"."):
                piece = piece[1:]
            chunk = piece + b"\r\n" if complete else piece
            size += len(chunk)
            if size > cap:
                too_big = True
            else:
                parts.append(chunk)
            at_start = complete
        if too_big and enforce:
            self.reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
            self._reset_tx()
            return
        if long_line and "no-998" in f:
            self.reply(554, "5.6.0", "Message contains a line longer than 997 octets")
            self._reset_tx()
            return
        queue_id = uuid.uuid4().hex[:12].upper()
        if self.cfg.maildir is not None:
            self._store(queue_id, b"".join(parts))
        self.reply(250, "2.0.0", f"Ok: queued as {queue_id}")
        if "data-no-reset" not in f:
            self._reset_tx()

    def _store(self, queue_id: str, data: bytes) -> None:
        proto = ("ESMTP" if self.esmtp else "SMTP") + ("S" if self.tls else "")
        rcpts = ", ".join(f"<{r}>" for r in self.rcpts)
        header = (
            f"Return-Path: <{self.mail_from or ''}>\r\n"
            f"Received: from {self.helo or 'unknown'} ([{self.peer[0]}])\r\n"
            f"\tby {self.cfg.hostname} (faulty) with {proto} id {queue_id}\r\n"
            f"\tfor {rcpts}; {email.utils.formatdate(localtime=True)}\r\n"
        ).encode("utf-8", "replace")
        maildir = self.cfg.maildir
        assert maildir is not None
        name = f"{time.time_ns()}.{os.getpid()}_{queue_id}.{self.cfg.hostname}"
        tmp = maildir / "tmp" / name
        tmp.write_bytes(header + data)
        os.replace(tmp, maildir / "new" / name)

    def cmd_RSET(self, arg: str) -> None:
        if self._strict_pre_helo():
            return
        if arg:
            self.reply(501, "5.5.4", "Syntax: RSET")
            return
        if "no-rset-state" not in self.f:
            self._reset_tx()
        self.reply(250, "2.0.0", "Ok")

    def cmd_NOOP(self, arg: str) -> None:
        if self._strict_pre_helo():
            return
        self.reply(250, "2.0.0", "Ok")

    def cmd_VRFY(self, arg: str) -> None:
        if self._strict_pre_helo():
            return
        if not arg:
            self.reply(501, "5.5.4", "Syntax: VRFY <address>")
            return
        self.reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")

    def cmd_EXPN(self, arg: str) -> None:
        if self._strict_pre_helo():
            return
        self.reply(502, "5.5.1", "EXPN not implemented")

    def _not_implemented(self, arg: str) -> None:
        self.reply(502, "5.5.1", "Command not implemented")

    cmd_TURN = cmd_SEND = cmd_SOML = cmd_SAML = _not_implemented

    def cmd_HELP(self, arg: str) -> None:
        if self._strict_pre_helo():
            return
        if "reply-line-too-long" in self.f:
            prefix = "214 " + ("" if "no-enhanced" in self.f else "2.0.0 ")
            self.send_lines([prefix + "x" * (598 - len(prefix))])
            return
        self.reply(
            214,
            "2.0.0",
            "faulty: a configurable RFC 5321 test server",
            "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY EXPN HELP QUIT",
            "End of HELP info",
        )

    def cmd_QUIT(self, arg: str) -> None:
        if "quit-no-reply" in self.f:
            self.quit = True
            _graceful_close(self.sock)
            return
        self.reply(221, "2.0.0", f"{self.cfg.hostname} Bye")
        if "no-quit-close" in self.f:
            return
        self.quit = True
        _graceful_close(self.sock)

    def cmd_STARTTLS(self, arg: str) -> None:
        if self.tls:
            self.reply(503, "5.5.1", "Bad sequence of commands: TLS already active")
            return
        if not self._tls_offered():
            self.reply(502, "5.5.1", "STARTTLS not available")
            return
        if arg:
            self.reply(501, "5.5.4", "Syntax: STARTTLS")
            return
        if self.helo is None or not self.esmtp:
            self.reply(503, "5.5.1", "Bad sequence of commands: send EHLO first")
            return
        self.reply(220, "2.0.0", "Ready to start TLS")
        leftover = bytes(self.reader.buf) if "starttls-inject" in self.f else b""
        self.reader.buf.clear()
        ctx = self.cfg.tls_context
        assert ctx is not None
        raw = self.sock
        try:
            tls_sock = ctx.wrap_socket(raw, server_side=True)
        except OSError:  # failed handshake: the SSL socket has closed the fd
            raise _Closed from None
        self.server.replace_conn(raw, tls_sock)
        self.sock = self.reader.sock = tls_sock
        self.reader.buf += leftover
        self.tls = True
        self.helo, self.esmtp = None, False
        self._reset_tx()


class _Handler(socketserver.BaseRequestHandler):
    server: FaultyServer

    def handle(self) -> None:
        sock = self.request
        self.server.add_conn(sock)
        session = self.server.session_class(self.server, sock, self.client_address)
        try:
            session.run()
        finally:
            self.server.drop_conn(session.sock)
            self.server.drop_conn(sock)
            with contextlib.suppress(OSError):
                session.sock.close()


class FaultyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], config: ServerConfig, session: type[_Session] = _Session) -> None:
        self.config = config
        self.session_class = session  # a test may script a few replies on top of the correct session
        self.stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def add_conn(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.add(sock)

    def admit(self) -> bool:
        """connection-limit: whether this session is within the limit (it is counted in _conns)."""
        with self._lock:
            return len(self._conns) <= CONNECTION_LIMIT

    def drop_conn(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)

    def replace_conn(self, old: socket.socket, new: socket.socket) -> None:
        with self._lock:
            self._conns.discard(old)
            self._conns.add(new)

    def shutdown_request(self, request: socket.socket) -> None:
        # The session closes its own socket (FIN, RST or TLS); do not touch it.
        with contextlib.suppress(OSError):
            request.close()

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, _Closed)):
            return
        print(f"faulty: error in connection from {client_address}:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)

    def stop(self) -> None:
        """Stop accepting, wake and close every open connection."""
        self.stopping.set()
        self.shutdown()
        self.server_close()
        with self._lock:
            conns = list(self._conns)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def start_in_thread(
    faults: list[str] | tuple[str, ...] = (),
    port: int = 0,
    maildir: str | os.PathLike | None = None,
    domain: str = "example.test",
    *,
    host: str = "127.0.0.1",
    hostname: str = DEFAULT_HOSTNAME,
    idle_timeout: float = 300.0,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    session: type[_Session] = _Session,
):
    """Start a server in a daemon thread; return ``(host, port, stop)``.

    ``stop()`` is idempotent: it stops accepting, closes open connections and
    joins the serving thread.
    """
    config = ServerConfig(
        faults=frozenset(faults),
        hostname=hostname,
        domain=domain,
        maildir=Path(maildir) if maildir is not None else None,
        idle_timeout=idle_timeout,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    server = FaultyServer((host, port), config, session)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="faulty-smtp", daemon=True
    )
    thread.start()
    done = threading.Lock()
    stopped = []

    def stop() -> None:
        with done:
            if stopped:
                return
            stopped.append(True)
            server.stop()
            thread.join(5)

    bound_host, bound_port = server.server_address[:2]
    return bound_host, bound_port, stop


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    epilog = "faults:\n" + "\n".join(f"  {name:24} {doc}" for name, doc in FAULTS.items())
    p = argparse.ArgumentParser(
        prog="python -m tests.servers.faulty",
        description="Configurable (and optionally broken) SMTP server for the suite's own tests.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--fault", action="extend", nargs="+", default=[], metavar="NAME",
                   help="fault(s) to switch on; repeatable, also comma-separated")  # fmt: skip
    p.add_argument("--maildir", default=None)
    p.add_argument("--domain", default="example.test")
    p.add_argument("--hostname", default=DEFAULT_HOSTNAME)
    p.add_argument("--idle-timeout", type=float, default=300.0)
    p.add_argument("--tls-cert", default=None)
    p.add_argument("--tls-key", default=None)
    args = p.parse_args(argv)
    args.fault = [n for item in args.fault for n in item.split(",") if n]
    unknown = sorted(set(args.fault) - set(FAULTS))
    if unknown:
        p.error(f"unknown fault(s): {', '.join(unknown)} (see --help)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        config = ServerConfig(
            faults=frozenset(args.fault),
            hostname=args.hostname,
            domain=args.domain,
            maildir=Path(args.maildir) if args.maildir else None,
            idle_timeout=args.idle_timeout,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
        server = FaultyServer((args.host, args.port), config)
    except (OSError, ValueError, ssl.SSLError, subprocess.CalledProcessError) as exc:
        print(f"faulty: cannot start: {exc}", file=sys.stderr)
        return 2
    stop_event = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    while not stop_event.wait(1.0):
        pass
    server.stop()
    thread.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
