"""One raw SMTP connection: bounded reads, exact writes, TLS upgrade, close/reset/timeout told apart."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import ssl
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from .escapes import escape_bytes
from .model import Cause
from .reply import Reply, ReplyParser
from .transcript import Transcript

READ_SIZE = 64 * 1024
INBOX_LIMIT = 2 * READ_SIZE  # received but unread: reading from the server pauses above twice this
MAX_TOTAL_READ = 32 * 1024 * 1024  # per connection: a flooding server cannot fill our memory
# After this long without a byte, a waiting dialogue gives its concurrency slot to a live one (it takes one
# again when bytes arrive), so that timeouts overlap instead of queueing behind each other.
IDLE_AFTER = 0.2
# "421 too many connections" as the very first reply (Exim over smtp_accept_max, …): wait, then reconnect
BUSY_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 4.0, 8.0, 8.0, 8.0)

Idle = Callable[[], AbstractAsyncContextManager[None]]


@dataclass
class Event:
    """Something other than a reply: the server closed, reset, or stayed silent."""

    kind: str  # "closed", "reset", "timeout"
    partial: bytes = b""  # bytes of an unfinished reply that came before it
    detail: str = ""

    code = None
    findings: tuple[str, ...] = ()

    def summary(self) -> str:
        text = {
            "closed": "connection closed by the server",
            "reset": "connection reset by the server",
            "timeout": "no complete reply before the timeout",
        }[self.kind]
        if self.detail:
            text += f" ({self.detail})"
        if self.partial:
            text += f" after partial data '{escape_bytes(self.partial[:120])}'"
        return text


Observation = Reply | Event


def observed_cause(obs: Observation) -> Cause:
    """What kind of answer a step got, when it is not the one the step allows."""
    if isinstance(obs, Event):
        return {"closed": Cause.CLOSED, "reset": Cause.RESET}.get(obs.kind, Cause.TIMEOUT)
    if obs.code is None or obs.truncated:
        return Cause.MALFORMED
    return Cause.REPLY_MISMATCH


class ConnectError(Exception):
    pass


class ResetOnConnect(ConnectError):
    """The server accepted the TCP connection and dropped it at once: reachable, so its own doing."""


class TLSConnectError(ConnectError):
    """Reached the server, but the implicit-TLS handshake failed: the server's fault, not the harness's."""


def make_tls_context(verify: bool, cafile: str | None = None) -> ssl.SSLContext:
    """Certificate checks are off by default: test servers mostly use self-signed certificates."""
    ctx = ssl.create_default_context(cafile=cafile)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ValueError, AttributeError):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class _Wire(asyncio.Protocol):
    """The transport's side of a Connection: bytes kept until read, flow control both ways, how it ended.

    A protocol instead of asyncio's streams: a round trip then costs a timer and a future, not a stream
    read, a drain and two timeout contexts. Reads keep the streams' contract (an error before the data
    still buffered, b"" at the end) so that verdicts do not depend on which of the two is underneath."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.inbox = bytearray()  # received, not yet read
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None  # what ended the connection, if it was not a clean end
        self.closed: asyncio.Future[None] = loop.create_future()
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False

    # ----- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.inbox += data
        self._wake()
        if len(self.inbox) > 2 * INBOX_LIMIT and not self._reading_paused and self.transport is not None:
            # a server that floods while nobody reads: the kernel's buffers hold the rest, not our memory
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.transport.pause_reading()
                self._reading_paused = True

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        # half-closed by the server: stay open for writing (as streams do), except over TLS where it cannot
        return self.transport is not None and self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        self.error = exc
        if not self.closed.done():
            self.closed.set_result(None)
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # ----- for the Connection ------------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def readable(self) -> bool:
        """A read would return at once (data, the end, or the error that ended it)."""
        return bool(self.inbox) or self.eof

    async def wait_readable(self, timeout: float) -> None:
        """Until a read would return at once; TimeoutError after timeout seconds."""
        if self.readable:
            return
        self._waiter = self.loop.create_future()
        try:
            await self._within(self._waiter, timeout)
        finally:
            self._waiter = None

    async def _within(self, future: asyncio.Future[None], timeout: float) -> None:
        """Until the future is done; TimeoutError after timeout seconds (a timer, not a task)."""
        timer = self.loop.call_later(timeout, _expire, future)
        try:
            await future
        finally:
            timer.cancel()

    def read(self, size: int) -> bytes:
        """Up to size octets (b"" at the end); the error that ended the connection comes first, as in streams."""
        if self.error is not None:
            raise self.error
        if not self.inbox:
            return b""  # the end (connection_lost sets eof too)
        data = bytes(self.inbox[:size])
        del self.inbox[:size]
        if self._reading_paused and len(self.inbox) <= INBOX_LIMIT and self.transport is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.transport.resume_reading()
                self._reading_paused = False
        return data

    async def write(self, data: bytes, timeout: float) -> None:
        """Hand data to the transport; wait (TimeoutError after timeout s) only while the server is not
        reading. A connection already ended raises what ended it, as a stream's drain would."""
        assert self.transport is not None
        if not self.lost and not self.transport.is_closing():  # a closed transport refuses writes (uvloop)
            self.transport.write(data)
        if self.error is not None:
            raise self.error
        if self.lost:
            raise ConnectionResetError("Connection lost")
        if not self._writing_paused:
            return
        self._drained = self.loop.create_future()
        try:
            await self._within(self._drained, timeout)
        finally:
            self._drained = None
        if self.lost:
            raise self.error or ConnectionResetError("Connection lost")


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class Connection:
    def __init__(self, transcript: Transcript, idle: Idle | None = None) -> None:
        self.transcript = transcript
        self.idle = idle  # releases the runner's slot for a wait (see IDLE_AFTER)
        self.replies = 0  # complete replies returned so far
        self.sent_octets = 0
        self.owed = 0.0  # seconds a read waited for the runner's slot after its bytes came
        self.parser = ReplyParser()
        self.wire: _Wire | None = None
        self.ended: str | None = None  # "closed" / "reset" once the server ended the connection
        self.timed_out = False
        self.tls = False
        self.total_read = 0

    async def open(self, host: str, port: int, timeout: float, tls: ssl.SSLContext | None = None,
                   server_hostname: str | None = None) -> None:
        loop = asyncio.get_running_loop()
        wire = _Wire(loop)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: no task of its own for every connect
                await loop.create_connection(
                    lambda: wire, host, port, ssl=tls, server_hostname=server_hostname if tls else None,
                    ssl_handshake_timeout=timeout if tls else None,
                )
        except TimeoutError:
            raise ConnectError(f"connect to {host}:{port} timed out after {timeout:g} s") from None
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError) as exc:
            if tls is None:
                raise ResetOnConnect(f"{host}:{port} accepted the connection and reset it at once") from None
            raise TLSConnectError(f"TLS handshake with {host}:{port} failed: "
                                  f"{getattr(exc, 'reason', None) or exc}") from None
        except socket.gaierror as exc:  # its errno is a resolver code (-2), not an errno: say it in words
            raise ConnectError(f"cannot connect to {host}:{port}: the name {host!r} does not resolve "
                               f"({exc.strerror or exc})") from None
        except OSError as exc:
            if exc.errno in (errno.ENOTCONN, errno.ECONNRESET, errno.EPIPE):
                raise ResetOnConnect(f"{host}:{port} accepted the connection and reset it at once") from None
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise ConnectError(f"cannot connect to {host}:{port}: {reason}") from None
        self.wire = wire
        self.tls = tls is not None
        self.transcript.event(f"connected to {host}:{port}" + (" (implicit TLS)" if tls else ""))

    async def send(self, data: bytes, timeout: float, chunk_size: int | None = None, delay: float = 0.0) -> None:
        """Write data as one write (or in chunks); a dead peer shows up at the next read instead."""
        assert self.wire is not None
        pieces = [data] if not chunk_size else [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        for n, piece in enumerate(pieces):
            if n and delay:
                await asyncio.sleep(delay)
            self.transcript.sent(piece)
            self.sent_octets += len(piece)
            if self.ended:
                continue
            try:
                await self.wire.write(piece, timeout)
            except TimeoutError:
                self.transcript.event("write blocked: the server is not reading")
                return
            except (ConnectionError, OSError) as exc:
                self.transcript.event(f"write failed: {exc.__class__.__name__}")
                return

    async def next(self, timeout: float) -> Observation:
        """The next complete reply, or the event that came instead, within timeout seconds."""
        assert self.wire is not None
        loop = self.wire.loop  # not asyncio.get_running_loop(): in Python 3.11 that is a getpid() syscall
        deadline = loop.time() + timeout
        parser = self.parser
        while True:
            # an empty buffer holds no reply, not even at the end: parse only when bytes came
            reply = parser.next_reply(eof=self.ended is not None) if parser.buffer else None
            if reply is not None:
                self.replies += 1
                return reply
            if self.ended:
                return Event(self.ended)
            remaining = deadline - loop.time()
            if remaining <= 0 and self.wire.inbox:
                remaining = 0.001  # bytes that came in time are read before the timeout is called
            if remaining <= 0:
                self.timed_out = True
                partial = self.parser.pending()
                self.transcript.event(f"no complete reply within {timeout:g} s")
                return Event("timeout", partial)
            try:
                data = await self._read(remaining)
                deadline += self.owed  # time spent waiting for our own slot is not the server's
                self.owed = 0.0
            except TimeoutError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                self._end("reset")
                continue
            except ssl.SSLError as exc:
                self._end("reset", f"TLS error: {exc.reason or exc}")
                continue
            except OSError as exc:
                self._end("reset", exc.strerror or str(exc))
                continue
            if not data:
                self._end("closed")
                continue
            self.transcript.received(data)
            self.total_read += len(data)
            self.parser.feed(data)
            if self.total_read > MAX_TOTAL_READ:
                self._end("reset", f"more than {MAX_TOTAL_READ} octets received; gave up")

    async def _read(self, timeout: float) -> bytes:
        """One read within timeout; past IDLE_AFTER the wait goes on without holding a slot."""
        wire = self.wire
        assert wire is not None
        if wire.readable:
            return wire.read(READ_SIZE)
        if self.idle is None or timeout <= IDLE_AFTER:
            await wire.wait_readable(timeout)
            return wire.read(READ_SIZE)
        try:
            await wire.wait_readable(IDLE_AFTER)
            return wire.read(READ_SIZE)
        except TimeoutError:
            pass
        loop = wire.loop
        came = loop.time()
        async with self.idle():
            await wire.wait_readable(timeout - IDLE_AFTER)
            came = loop.time()
        self.owed += loop.time() - came
        return wire.read(READ_SIZE)

    def busy_at_connect(self, obs: Observation) -> bool:
        """The first reply is a 421 before we sent anything: the server is full, not wrong (retry)."""
        return isinstance(obs, Reply) and obs.code == 421 and not obs.truncated and self.replies == 1 \
            and self.sent_octets == 0

    def _end(self, kind: str, detail: str = "") -> None:
        if not self.ended:
            self.ended = kind
            self.transcript.event(f"connection {kind} by server" + (f": {detail}" if detail else ""))

    def buffered(self) -> bytes:
        """Bytes received but not yet parsed, including what sits unread in the inbox."""
        pending = self.parser.pending()
        return pending + (bytes(self.wire.inbox) if self.wire is not None else b"")

    async def start_tls(self, ctx: ssl.SSLContext, server_hostname: str | None, timeout: float) -> str | None:
        """Upgrade in place after a 220 to STARTTLS. Returns an error text, or None on success."""
        wire = self.wire
        assert wire is not None and wire.transport is not None
        # Plaintext that arrived before the handshake must not be read as if it came over TLS.
        self.parser.buffer.clear()
        wire.inbox.clear()
        self.transcript.event("TLS handshake")
        loop = asyncio.get_running_loop()
        try:
            transport = await asyncio.wait_for(
                loop.start_tls(wire.transport, wire, ctx, server_hostname=server_hostname,
                               ssl_handshake_timeout=timeout),
                timeout + 1,
            )
        except TimeoutError:
            self.transcript.event("TLS handshake timed out")
            return f"TLS handshake did not finish within {timeout:g} s"
        except (ssl.SSLError, ConnectionError, OSError) as exc:
            self._end("reset", f"TLS handshake failed: {exc}")
            return f"TLS handshake failed: {exc}"
        if transport is None:  # the connection ended during the handshake
            self._end("reset", "TLS handshake failed: connection lost")
            return "TLS handshake failed: connection lost"
        wire.transport = transport  # type: ignore[assignment]
        self.tls = True
        ssl_object = transport.get_extra_info("ssl_object")
        version = ssl_object.version() if ssl_object else "?"
        cipher = ssl_object.cipher()[0] if ssl_object else "?"
        self.transcript.event(f"TLS established: {version} {cipher}")
        return None

    async def close(self) -> None:
        wire = self.wire
        if wire is None or wire.transport is None:
            return
        wire.transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(wire.closed), 1.0)
        except TimeoutError:
            wire.transport.abort()
