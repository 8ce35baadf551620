"""The plumbing of the small scripted SMTP servers that integration tests define for their negative proofs.

Each test file keeps its own server (its replies, its faults, its policies); what they have in common lives
here:

* `Session`: one connection. Buffered input (`fill`, `read_limited`, `data_lines`, `octets`), output
  (`send`, `reply`), the command loop (greeting, then `cmd_VERB(arg)` per command line; a handler returns
  `CLOSE` to end the session), the usual NOOP/RSET/QUIT, Maildir storage (`store`) and STARTTLS/implicit
  TLS (`start_tls`). A subclass changes what it needs: its greeting and replies, how it reads a command
  line (`next_line`), what it does with one (`command`, `dispatch`, `unknown`).
* `ScriptedServer`: a threading TCP server on 127.0.0.1 (an engine-chosen port) that runs one `Session`
  subclass per connection, knows its faults (checked against the names a test declares), an optional
  Maildir (created) and an optional TLS context, and keeps track of its open connections.
* `Servers`: starts servers in daemon threads; leaving the `with` block stops every one of them and shuts
  down the connections still open. Fixtures wrap it:

      @pytest.fixture
      def tiny() -> Iterator[Callable[..., str]]:
          with Servers() as servers:
              yield lambda *faults: servers.start(_TinyServer(faults)).address

* `certificate` and `server_context`: a throw-away self-signed certificate (openssl) and a server context.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from tests.support import missing

CLOSE = "close"  # what a command handler returns to end the session
TOO_LONG = "\0too-long"  # what a session's next_line returns for a line over its limit


class Closed(Exception):
    """The peer closed the connection (or the session ends here)."""


class Session:
    """One SMTP connection, correct by default; subclasses add commands, faults and their own replies."""

    greeting = "220 scripted.example.test ESMTP"
    unrecognized = "500 5.5.2 command unrecognized"  # the reply to an unknown verb
    line_limit: int | None = None  # octets of a command line with its CRLF; a longer one is answered `too_long`
    line_cap: int | None = None  # a line still without its end after this many octets ends the session
    too_long = "500 5.5.2 line too long"
    strip_arg = False  # True: a command's argument reaches its handler without surrounding white space
    tag = "scripted"  # the last part of the Maildir file names
    close_abruptly = False  # True: the socket is closed at the end without a shutdown first (no FIN ahead of a RST)

    def __init__(self, server: ScriptedServer, sock: socket.socket, peer: tuple[str, int]) -> None:
        self.server = server
        self.sock: socket.socket = sock
        self.peer = peer
        self.f = server.faults
        self.buf = b""
        self.tls = False
        self.reset()

    def reset(self) -> None:
        """Forget the mail transaction."""
        self.mail: str | None = None
        self.rcpts: list[str] = []

    # ----- input -----
    def fill(self) -> bytes:
        """Read once more from the peer into the buffer; Closed when it has closed."""
        data = self.sock.recv(65536)
        if not data:
            raise Closed
        self.buf += data
        return data

    def read_limited(self, limit: int | None) -> str | None:
        """The next line (ended by CRLF), decoded as UTF-8. TOO_LONG if it is longer than `limit` octets with its
        CRLF (it is read to its end first); None once the connection is gone, or when `line_cap` octets have
        come without a line end."""
        while b"\r\n" not in self.buf:
            if self.line_cap is not None and len(self.buf) > self.line_cap:
                return None
            try:
                self.fill()
            except (Closed, OSError):
                return None
        line, _, self.buf = self.buf.partition(b"\r\n")
        if limit is not None and len(line) + 2 > limit:
            return TOO_LONG
        return line.decode("utf-8", "replace")

    def data_lines(self) -> list[str] | None:
        """The mail data after a 354, as text lines up to the lone ".", dot-unstuffed (None: the connection ended)."""
        lines = []
        while (line := self.read_limited(1 << 20)) != ".":
            if line is None:
                return None
            lines.append(line[1:] if line.startswith(".") else line)
        return lines

    def octets(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    # ----- output -----
    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(x + "\r\n" for x in lines).encode("utf-8"))

    def reply(self, code: int, enh: str, text: str) -> None:
        self.send(f"{code} {enh} {text}")

    # ----- the session -----
    def run(self) -> None:
        self.send(self.greeting)
        while (line := self.next_line()) is not None:
            if self.command(line) == CLOSE:
                return

    def next_line(self) -> str | None:
        """The next command line (TOO_LONG: it was over the limit; None: end the session)."""
        return self.read_limited(self.line_limit)

    def command(self, line: str) -> str | None:
        if line == TOO_LONG:
            self.send(self.too_long)
            return None
        verb, _, arg = line.partition(" ")
        return self.dispatch(verb, arg.strip() if self.strip_arg else arg)

    def dispatch(self, verb: str, arg: str) -> str | None:
        handler = getattr(self, f"cmd_{verb.upper()}", None) if verb.isalpha() else None
        if handler is None:
            return self.unknown(verb, arg)
        return handler(arg)

    def unknown(self, verb: str, arg: str) -> str | None:
        self.send(self.unrecognized)
        return None

    def cmd_NOOP(self, arg: str) -> str | None:
        self.send("250 2.0.0 ok")
        return None

    def cmd_RSET(self, arg: str) -> str | None:
        self.reset()
        self.send("250 2.0.0 ok")
        return None

    def cmd_QUIT(self, arg: str) -> str | None:
        self.send("221 2.0.0 bye")
        return CLOSE

    # ----- storage -----
    def store(self, content: bytes) -> None:
        """One message in the server's Maildir: written to tmp/, then renamed into new/."""
        maildir = self.server.maildir
        assert maildir is not None
        name = self.message_name()
        (maildir / "tmp" / name).write_bytes(content)
        os.rename(maildir / "tmp" / name, maildir / "new" / name)

    def message_name(self) -> str:
        return f"{time.time_ns()}.{threading.get_ident()}.{self.tag}"

    # ----- TLS -----
    def start_tls(self) -> None:
        """The server side of a TLS handshake with the server's context; Closed if it fails."""
        context = self.server.context
        assert context is not None
        try:
            self.sock = context.wrap_socket(self.sock, server_side=True)
        except OSError:  # ssl.SSLError included
            raise Closed from None
        self.tls = True


class _Handler(socketserver.BaseRequestHandler):
    server: ScriptedServer

    def handle(self) -> None:
        session = self.server.session_class(self.server, self.request, self.client_address)
        with self.server.lock:
            self.server.sessions.add(session)
        try:
            with contextlib.suppress(Closed, OSError):
                session.run()
        finally:
            with self.server.lock:
                self.server.sessions.discard(session)
            # a plain socket is shut down (FIN) and closed by socketserver; a TLS one is closed here
            if session.sock is not self.request or session.close_abruptly:
                with contextlib.suppress(OSError):
                    session.sock.close()


class ScriptedServer(socketserver.ThreadingTCPServer):
    """Serves `session` (a Session subclass) on 127.0.0.1, one thread per connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the suite opens dozens of connections at once

    def __init__(self, session: type[Session], faults: Iterable[str] = (), maildir: Path | None = None, *,
                 known: Collection[str] | None = None, context: ssl.SSLContext | None = None) -> None:
        self.faults = frozenset(faults)
        if known is not None and self.faults - set(known):
            raise ValueError(f"unknown faults {sorted(self.faults - set(known))}")
        self.session_class, self.maildir, self.context = session, maildir, context
        if maildir is not None:
            for sub in ("tmp", "new", "cur"):
                (maildir / sub).mkdir(parents=True, exist_ok=True)
        self.sessions: set[Session] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        """Stop serving, close the listening socket and shut down the connections still open."""
        self.shutdown()
        self.server_close()
        with self.lock:
            open_sockets = [session.sock for session in self.sessions]
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


S = TypeVar("S", bound=ScriptedServer)


class Servers:
    """Scripted servers serving in daemon threads, all stopped when the `with` block ends."""

    def __init__(self) -> None:
        self.started: list[ScriptedServer] = []

    def __len__(self) -> int:
        return len(self.started)

    def start(self, server: S) -> S:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.started.append(server)
        return server

    def with_maildir(self, session: type[Session], faults: Iterable[str], maildir: Path) -> tuple[str, Path]:
        """("127.0.0.1:PORT", maildir) of a new ScriptedServer for session that stores into maildir."""
        return self.start(ScriptedServer(session, faults, maildir)).address, maildir

    def stop(self) -> None:
        while self.started:
            self.started.pop().stop()

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def certificate(hostname: str) -> Iterator[tuple[Path, Path]]:
    """(cert.pem, key.pem): a self-signed P-256 certificate for hostname, removed at the end of the block."""
    if shutil.which("openssl") is None:
        missing("openssl is needed to make the test certificate")
    workdir = Path(tempfile.mkdtemp(prefix="smtpc-cert-"))
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", f"/CN={hostname}", "-keyout", str(workdir / "key.pem"),
                        "-out", str(workdir / "cert.pem")], check=True, capture_output=True, timeout=30)
        yield workdir / "cert.pem", workdir / "key.pem"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx

