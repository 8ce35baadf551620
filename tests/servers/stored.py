"""A storing SMTP server that gets the *stored form* of a message wrong in exactly one way per fault.

Built on the correct session of tests/servers/faulty.py (same replies, same Maildir format: `Return-Path:`
and `Received:`, then the data as received after dot-unstuffing — here one copy per recipient, each with a
`Delivered-To:` field naming it, so `delivered: rcpt:` can tell the copies apart), with three differences that the
stored-form scenarios need: CHUNKING (RFC 3030 BDAT) and SMTPUTF8 (a UTF-8 reverse-path with the SMTPUTF8
parameter) are advertised and implemented, the SIZE limit is small
(`SIZE 100000`, so a message of exactly the limit is cheap to send), and the faults below. Without a fault
the server is correct, and every stored-form scenario passes on it; with one, the scenario about that one
thing fails (tests/integration/test_catalog_stored.py).

| fault | what the server gets wrong |
|---|---|
| `no-unstuff` | dot-stuffed text lines are stored with their leading dot (RFC 5321 §4.5.2) |
| `truncate-long-lines` | text lines longer than 200 octets are stored cut to 200 octets (§4.5.3.1.6: 998 + CRLF) |
| `bdat-last-chunk-only` | of a message sent in several BDAT chunks only the last chunk is stored (RFC 3030 §2) |
| `rset-keeps-rcpts` | RSET forgets the sender but keeps the recipients, and MAIL does not clear them (§4.1.1.5) |
| `domain-case-sensitive` | a recipient domain is compared case-sensitively: `<user@EXAMPLE.TEST>` is refused (§2.4) |
| `size-off-by-one` | advertises `SIZE 100000` and refuses a message of exactly 100000 octets (RFC 1870 §4, §6) |
| `strip-trailing-space` | spaces and tabs at the end of text lines are not stored (§4.5.2: all characters delivered) |
| `trim-trailing-empty-lines` | empty lines at the end of the body are not stored (§4.1.1.4) |
| `unfold-headers` | folded header fields are stored unfolded (the client's header section changed) |
| `helo-no-domain` | HELO is answered `250 Hello <client>`: the server does not name itself (§4.1.1.1) |
| `vrfy-needs-domain` | `VRFY user` is refused `501 … must contain a domain` (§3.5.1) |
| `eod-pipeline-503` | commands that arrived with the end-of-data dot are refused with 503 (RFC 2920 §3.1) |
| `first-recipient-only` | of a message for several recipients only the first recipient's copy is stored (§2.1) |
| `drop-many-rcpts` | a message for more than 50 recipients is acknowledged (250) and stored nowhere (§4.5.3.1.8) |
| `utf8-headers-downgraded` | SMTPUTF8 offered, but non-ASCII octets of the header section stored as `?` (RFC 6531) |

In-process::

    from tests.servers.stored import start_stored
    address, stop = start_stored("truncate-long-lines", maildir=tmp_path)   # "127.0.0.1:PORT"
    ...
    stop()

From a shell: `python -m tests.servers.stored --port 2525 --maildir DIR [--fault NAME]`.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.servers import faulty

__all__ = ["STORED_FAULTS", "SIZE", "TRUNCATE_AT", "start_stored", "main"]

STORED_FAULTS: dict[str, str] = {
    "no-unstuff": "dot-stuffed lines stored with their leading dot",
    "truncate-long-lines": "text lines over 200 octets stored as 200 octets",
    "bdat-last-chunk-only": "only the last BDAT chunk of a message is stored",
    "rset-keeps-rcpts": "RSET forgets the sender but keeps the recipients",
    "domain-case-sensitive": "recipient domain compared case-sensitively",
    "size-off-by-one": "a message of exactly the advertised SIZE is refused",
    "strip-trailing-space": "trailing spaces and tabs of text lines are not stored",
    "trim-trailing-empty-lines": "empty lines at the end of the body are not stored",
    "unfold-headers": "folded header fields are stored unfolded",
    "helo-no-domain": "HELO answered '250 Hello <client>' (no server name)",
    "vrfy-needs-domain": "VRFY of a bare local part refused with 501",
    "eod-pipeline-503": "commands pipelined after the end-of-data dot refused with 503",
    "first-recipient-only": "only the first recipient's copy of a message is stored",
    "utf8-headers-downgraded": "non-ASCII octets of the header section stored as '?'",
    "drop-many-rcpts": "a message for more than 50 recipients is acknowledged and not stored",
}
SIZE = 100_000  # the advertised and enforced limit, in RFC 1870 octets (CRLF pairs counted, stuffing not)
TRUNCATE_AT = 200
_BDAT_RE = re.compile(r"(?i)(\d{1,12})( +LAST)?")


class _Config(faulty.ServerConfig):
    @property
    def max_size(self) -> int:  # MAIL's SIZE= parameter is judged against the same small limit
        return SIZE


class StoredSession(faulty._Session):
    """faulty.py's correct session plus CHUNKING, a small SIZE and the one fault of `stored_fault`."""

    stored_fault: str | None = None

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.chunks: list[bytes] | None = None  # the BDAT chunks of the message being transferred

    def _reset_tx(self) -> None:
        super()._reset_tx()
        self.chunks = None

    def cmd_EHLO(self, arg: str) -> None:
        if not arg:
            self.reply(501, "5.5.4", "Syntax: EHLO hostname")
            return
        self._reset_tx()
        self.helo, self.esmtp = arg.split(" ")[0], True
        keywords = [self.cfg.hostname, "PIPELINING", f"SIZE {SIZE}", "8BITMIME", "ENHANCEDSTATUSCODES",
                    "CHUNKING", "SMTPUTF8", "HELP"]
        self.send_lines([f"250{' ' if i == len(keywords) - 1 else '-'}{k}" for i, k in enumerate(keywords)])

    def cmd_HELO(self, arg: str) -> None:
        if self.stored_fault == "helo-no-domain" and arg:
            self._reset_tx()
            self.helo, self.esmtp = arg.split(" ")[0], False
            self.reply(250, None, f"Hello {self.helo}")
            return
        super().cmd_HELO(arg)

    def cmd_VRFY(self, arg: str) -> None:
        if self.stored_fault == "vrfy-needs-domain" and arg and "@" not in arg and arg.lower() != "postmaster":
            self.reply(501, "5.1.3", f"{arg}: recipient address must contain a domain")
            return
        super().cmd_VRFY(arg)

    def cmd_RSET(self, arg: str) -> None:
        if self.stored_fault == "rset-keeps-rcpts" and not arg:
            self.mail_from, self.chunks = None, None  # the recipients stay
            self.reply(250, "2.0.0", "Ok")
            return
        super().cmd_RSET(arg)

    def cmd_MAIL(self, arg: str) -> None:
        kept = self.rcpts
        words = arg.split(" ")
        if len(words) > 1 and "SMTPUTF8" in (w.upper() for w in words[1:]):  # RFC 6531: a UTF-8 path may follow
            arg = " ".join(w for w in words if w.upper() != "SMTPUTF8")
            path = arg[5:].lstrip(" ").split(" ")[0]
            if arg[:5].upper() == "FROM:" and not path.isascii() and self.helo and self.mail_from is None:
                # the line was read as latin-1: the path's UTF-8 octets are kept as they came
                arg = arg.replace(path, "<utf8@example.net>", 1)
                super().cmd_MAIL(arg)
                if self.mail_from is not None:
                    self.mail_from = path[1:-1].encode("latin-1").decode("utf-8", "replace")
                return
        super().cmd_MAIL(arg)
        if self.stored_fault == "rset-keeps-rcpts" and self.mail_from is not None:
            self.rcpts = kept

    def _rcpt(self, arg: str) -> tuple[int, str, str]:
        code, enh, text = super()._rcpt(arg)
        if code == 250 and self.stored_fault == "domain-case-sensitive":
            domain = self.rcpts[-1].rpartition("@")[2]
            if domain != self.cfg.domain and domain.lower() == self.cfg.domain.lower():
                self.rcpts.pop()
                return 550, "5.7.1", "Relaying denied"
        return code, enh, text

    def cmd_DATA(self, arg: str) -> None:
        if self.chunks is not None:
            self.reply(503, "5.5.1", "Bad sequence of commands: DATA after BDAT")
            return
        super().cmd_DATA(arg)

    def _too_big(self, size: int) -> bool:
        return size >= SIZE if self.stored_fault == "size-off-by-one" else size > SIZE

    def _read_data(self) -> None:
        unstuff = self.stored_fault != "no-unstuff"
        truncate = self.stored_fault == "truncate-long-lines"
        parts: list[bytes] = []
        size = stored_len = 0
        at_start = True
        while True:
            piece, complete = self.reader.read_piece(65536, False)
            if at_start and complete and piece == b".":
                break
            if at_start:
                stored_len = 0
                if unstuff and piece.startswith(b"."):
                    piece = piece[1:]
            size += len(piece) + (2 if complete else 0)
            if truncate:
                piece = piece[: max(0, TRUNCATE_AT - stored_len)]
            stored_len += len(piece)
            if size <= SIZE + 2:  # what is refused anyway is not kept
                parts.append(piece + b"\r\n" if complete else piece)
            at_start = complete
        self._finish(self._transformed(b"".join(parts)), size)
        if self.stored_fault == "eod-pipeline-503":  # whatever came with the dot is refused, line by line
            while b"\r\n" in self.reader.buf:
                del self.reader.buf[: self.reader.buf.index(b"\r\n") + 2]
                self.reply(503, "5.5.0", "pipelined after end of DATA")

    def _transformed(self, data: bytes) -> bytes:
        """The one irreversible change a data fault makes to the stored text."""
        if self.stored_fault == "strip-trailing-space":
            return b"\r\n".join(line.rstrip(b" \t") for line in data.split(b"\r\n"))
        if self.stored_fault == "trim-trailing-empty-lines":
            while data.endswith(b"\r\n\r\n"):
                data = data[:-2]
        if self.stored_fault == "utf8-headers-downgraded":
            head, sep, body = data.partition(b"\r\n\r\n")
            return re.sub(rb"[\x80-\xff]", b"?", head) + sep + body
        if self.stored_fault == "unfold-headers":
            head, sep, body = data.partition(b"\r\n\r\n")
            return re.sub(rb"\r\n[ \t]+", b" ", head) + sep + body
        return data

    def _store(self, queue_id: str, data: bytes) -> None:
        """One copy per recipient, as a delivery agent writes them: Delivered-To names the copy's recipient."""
        everyone = self.rcpts
        if self.stored_fault == "drop-many-rcpts" and len(everyone) > 50:
            return  # the 250 follows all the same
        try:
            for n, rcpt in enumerate(everyone[:1] if self.stored_fault == "first-recipient-only" else everyone, 1):
                self.rcpts = [rcpt]  # faulty.py's Received field then says "for <rcpt>"
                super()._store(f"{queue_id}{n}", f"Delivered-To: {rcpt}\r\n".encode() + data)  # unique file names
        finally:
            self.rcpts = everyone

    def _finish(self, data: bytes, size: int) -> None:
        if self._too_big(size):
            self.reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
        else:
            queue_id = uuid.uuid4().hex[:12].upper()
            if self.cfg.maildir is not None:
                self._store(queue_id, data)
            self.reply(250, "2.0.0", f"Ok: queued as {queue_id}")
        self._reset_tx()

    def cmd_BDAT(self, arg: str) -> None:
        m = _BDAT_RE.fullmatch(arg)
        if not m:
            self.reply(501, "5.5.4", "Syntax: BDAT <octets> [LAST]")
            return
        wanted = int(m[1])
        while len(self.reader.buf) < wanted:
            self.reader._fill()
        chunk = bytes(self.reader.buf[:wanted])
        del self.reader.buf[:wanted]  # read (and discarded, on failure) before the reply: RFC 3030 §2
        if self.helo is None or self.mail_from is None or not self.rcpts:
            self.reply(503, "5.5.1", "Bad sequence of commands: need MAIL and RCPT before BDAT")
            return
        self.chunks = [*(self.chunks or []), chunk]
        size = sum(map(len, self.chunks))
        if not m[2]:
            if self._too_big(size):
                self.reply(552, "5.3.4", "Message size exceeds fixed maximum message size")
                self._reset_tx()
            else:
                self.reply(250, "2.0.0", f"{wanted} octets received")
            return
        stored = self.chunks[-1] if self.stored_fault == "bdat-last-chunk-only" else b"".join(self.chunks)
        self._finish(stored, size)


def start_stored(fault: str | None = None, *, maildir: str | Path, domain: str = "example.test",
                 port: int = 0) -> tuple[str, Callable[[], None]]:
    """Start the server with at most one fault in a daemon thread: ("127.0.0.1:PORT", stop)."""
    if fault is not None and fault not in STORED_FAULTS:
        raise ValueError(f"unknown stored fault {fault!r} (known: {', '.join(STORED_FAULTS)})")
    session = type("StoredSession", (StoredSession,), {"stored_fault": fault})
    config = _Config(hostname="stored.example.test", domain=domain, maildir=Path(maildir))
    server = faulty.FaultyServer(("127.0.0.1", port), config, session)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    done: list[bool] = []

    def stop() -> None:
        if not done:
            done.append(True)
            server.stop()
            thread.join(5)

    return f"127.0.0.1:{server.server_address[1]}", stop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.servers.stored", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--maildir", required=True)
    p.add_argument("--domain", default="example.test")
    p.add_argument("--fault", choices=sorted(STORED_FAULTS), default=None)
    args = p.parse_args(argv)
    try:
        address, stop = start_stored(args.fault, maildir=args.maildir, domain=args.domain, port=args.port)
    except OSError as exc:
        print(f"stored: cannot start: {exc}", file=sys.stderr)
        return 2
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    while not stopping.wait(1.0):
        pass
    stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
