"""Byte escapes in both directions.

Authors write bytes in scenarios with `\\r`, `\\n`, `\\t`, `\\\\` and `\\xHH`; transcripts show server
bytes the same way, so what a report shows can be pasted back into a scenario.
"""

from __future__ import annotations

import re

_NAMED = {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\", "0": b"\x00"}


class EscapeError(ValueError):
    """A malformed escape in scenario text."""


def decode_escapes(text: str) -> bytes:
    """Turn scenario text into wire bytes: escapes resolved, other characters UTF-8 encoded."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out += ch.encode("utf-8")
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt in _NAMED:
            out += _NAMED[nxt]
            i += 2
        elif nxt == "x":
            hexpart = text[i + 2 : i + 4]
            if len(hexpart) != 2 or any(c not in "0123456789abcdefABCDEF" for c in hexpart):
                raise EscapeError(f"bad escape {text[i:i + 4]!r}: \\x needs two hex digits")
            out.append(int(hexpart, 16))
            i += 4
        else:
            raise EscapeError(
                f"unknown escape {text[i:i + 2]!r} (use \\r \\n \\t \\0 \\\\ or \\xHH; "
                "in double-quoted YAML write \\\\r)"
            )
    return bytes(out)


def _escaped(b: int) -> str:
    if b == 0x5C:
        return "\\\\"
    if 0x20 <= b < 0x7F:
        return chr(b)
    return {0x0D: "\\r", 0x0A: "\\n", 0x09: "\\t"}.get(b, f"\\x{b:02x}")


# each octet's printable form, looked up in C: every transcript entry of every result goes through here
_ESCAPED = tuple(_escaped(b) for b in range(256))


# printable ASCII but the backslash, and CR, LF, TAB: what nearly every SMTP line is made of
_PLAIN = re.compile(rb"[\x20-\x5b\x5d-\x7e\r\n\t]*")


def escape_bytes(data: bytes) -> str:
    """Render untrusted bytes as printable ASCII, losslessly (inverse of decode_escapes)."""
    if _PLAIN.fullmatch(data):  # the common case: three C-level replaces instead of a lookup per octet
        return data.decode("ascii").replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return "".join(map(_ESCAPED.__getitem__, data))


def escape_text(text: str) -> str:
    """Escape a str that may carry server-derived characters (decoded as latin-1 or surrogates)."""
    return escape_bytes(text.encode("utf-8", "surrogateescape"))
