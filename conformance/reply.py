"""SMTP replies and a strict, bounded parser for them (RFC 5321 §4.2).

The parser is lenient enough to go on (a bare-LF line end still ends a line) but records every
deviation as a finding, so a report can show it whatever the scenario's verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .escapes import escape_bytes

RFC_REPLY_LINE = 512  # octets including CRLF (§4.5.3.1.5)
MAX_LINE = 64 * 1024  # beyond this without a line end the server is flooding us
MAX_LINES = 1000  # lines in one multi-line reply
MAX_REPLY = 1024 * 1024  # octets in one reply

_ENHANCED = re.compile(rb"^([245])\.(\d{1,3})\.(\d{1,3})(?= |$)")


@dataclass(slots=True)
class Reply:
    code: int | None  # None: the first line was not a reply line at all
    lines: list[bytes]  # each line without its terminator
    raw: bytes  # exactly what was received
    findings: list[str] = field(default_factory=list)
    truncated: bool = False  # the parser gave up (flood / endless reply): the connection is unusable

    @property
    def texts(self) -> list[bytes]:
        return [line[4:] for line in self.lines]

    @property
    def text(self) -> str:
        return "\n".join(t.decode("utf-8", "replace") for t in self.texts)

    @property
    def enhanced(self) -> str | None:
        if self.code is None or not self.lines:
            return None
        match = _ENHANCED.match(self.lines[0][4:])
        return match.group(0).decode() if match else None

    def summary(self, limit: int = 160) -> str:
        """The first line, escaped, with a count of the others: for messages and matrix cells."""
        if not self.lines:
            return escape_bytes(self.raw[:limit])
        first = escape_bytes(self.lines[0][:limit])
        more = len(self.lines) - 1
        return first + (f" (+{more} more line{'s' if more > 1 else ''})" if more else "")

    def keywords(self) -> list[str]:
        """EHLO keywords with parameters, from the lines after the first (uppercase keyword)."""
        out = []
        for text in self.texts[1:]:
            words = text.decode("ascii", "replace").split()
            if words:
                out.append(" ".join([words[0].upper(), *words[1:]]))
        return out


class ReplyParser:
    """Consumes bytes from a buffer and yields whole replies; knows nothing of sockets."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def pending(self) -> bytes:
        return bytes(self.buffer)

    def next_reply(self, eof: bool = False) -> Reply | None:
        """A complete reply, or None if more bytes are needed. With eof, a partial one is returned."""
        lines: list[bytes] = []
        findings: list[str] = []
        code: int | None = None
        pos = 0
        buf = self.buffer
        while True:
            nl = buf.find(b"\n", pos, pos + MAX_LINE + 2)
            if nl < 0:
                if len(buf) - pos > MAX_LINE:
                    return self._give_up(pos + MAX_LINE, lines, findings,
                                         f"no line end within {MAX_LINE} octets (flood?)")
                if eof and len(buf) > 0:
                    rest = bytes(buf[pos:])
                    lines.append(rest)
                    findings.append("connection closed in the middle of a reply line")
                    if code is None:
                        code = _code_of(rest)
                    return self._take(len(buf), code, lines, findings)
                return None
            end = nl + 1
            if nl > pos and buf[nl - 1] == 0x0D:
                line = bytes(buf[pos : nl - 1])
            else:
                line = bytes(buf[pos:nl])
                _note(findings, "reply line ended with a bare LF instead of CRLF")
            if b"\r" in line:
                _note(findings, "bare CR inside a reply line")
            if end - pos > RFC_REPLY_LINE and not any(f.startswith("reply line of ") for f in findings):
                # once per reply: a flood of lines of every length must not make a finding per line
                _note(findings, f"reply line of {end - pos} octets exceeds {RFC_REPLY_LINE} (§4.5.3.1.5)")
            lines.append(line)
            pos = end
            this_code = _code_of(line)
            if code is None and len(lines) == 1:
                code = this_code
                if code is None:
                    # Not a reply line: report it as it is, one line.
                    return self._take(pos, None, lines, findings)
            elif this_code != code and not any(f.startswith("multi-line reply mixes") for f in findings):
                _note(findings, f"multi-line reply mixes codes {code} and {_describe_code(line)} (§4.2)")
            sep = line[3:4]
            if sep == b"-":
                if len(lines) >= MAX_LINES or pos > MAX_REPLY:
                    return self._give_up(pos, lines, findings,
                                         f"multi-line reply longer than {MAX_LINES} lines or {MAX_REPLY} octets")
                continue
            if sep not in (b"", b" "):
                _note(findings, f"reply code not followed by space, '-' or CRLF: {escape_bytes(line[:8])}")
            if code is not None and not 200 <= code <= 599:
                _note(findings, f"reply code {code} outside 2yz-5yz")
            return self._take(pos, code, lines, findings)

    def _take(self, upto: int, code: int | None, lines: list[bytes], findings: list[str]) -> Reply:
        raw = bytes(self.buffer[:upto])
        del self.buffer[:upto]
        return Reply(code, lines, raw, findings)

    def _give_up(self, upto: int, lines: list[bytes], findings: list[str], why: str) -> Reply:
        raw = bytes(self.buffer[: min(upto, len(self.buffer))])
        self.buffer.clear()
        findings.append(why)
        code = _code_of(lines[0]) if lines else None
        if not lines:
            lines = [raw[:RFC_REPLY_LINE]]
        return Reply(code, lines, raw, findings, truncated=True)


def _code_of(line: bytes) -> int | None:
    head = line[:3]
    return int(head) if len(head) == 3 and head.isdigit() else None


def _describe_code(line: bytes) -> str:
    code = _code_of(line)
    return str(code) if code is not None else repr(escape_bytes(line[:8]))


def _note(findings: list[str], finding: str) -> None:
    if finding not in findings:
        findings.append(finding)
