"""Quotes are RFC text: a scenario's `quote` must be verbatim in the section it cites, and a MUST or SHOULD
scenario's level must be carried by the quote's BCP 14 keyword (or explained by `level_from`).

The RFC texts are package data (`conformance/data/rfc/rfcNNNN.txt`, the RFC Editor's plain text, unmodified).
Reading one: page footers (`... [Page N]`), running headers (`RFC NNNN   title   Month Year`) and form feeds
go; a section runs from its heading (`4.1.1.4.  DATA`, `6.1 Server action`, `Appendix F.`, `F.6.  SAML`, at
the start of a line) to the next heading that is not one of its subsections. Quote and section are compared
with whitespace collapsed and line-break hyphenation undone ("receiver-\\n   SMTP" reads "receiver-SMTP"). A
quote may leave text out with `[...]`: its pieces must appear in the section in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

ELLIPSIS = re.compile(r"\s*\[(?:\.\.\.|…)\]\s*")
_FOOTER = re.compile(r"^\S.*\[Page \d+\]\s*$")
_HEADER = re.compile(r"^RFC \d+ {2,}\S.*\S\s+[A-Z][a-z]+ \d{4}\s*$")  # "RFC 5321   SMTP   October 2008"
# at column 0: "4.1.1.4.  DATA", "6.1 Server action", "Appendix F.  Deprecated", "F.6.  SAML"
_HEADING = re.compile(r"^(?:Appendix +)?(\d+|[A-Z])((?:\.\d+)*)\.? +\S")
# a hyphen at a line break is kept, the break is not: "forward-\n   path" is "forward-path"
_BROKEN_HYPHEN = re.compile(r"(?<=[A-Za-z0-9])- (?=[A-Za-z0-9])")

# BCP 14 (RFC 2119, RFC 8174) keywords, by the strength of the level they carry
KEYWORDS = {
    "MUST": re.compile(r"\b(?:MUST|REQUIRED|SHALL)\b"),
    "SHOULD": re.compile(r"\b(?:SHOULD|RECOMMENDED)\b"),
}
LEVEL_STRENGTH = {"MUST": "MUST", "MUST NOT": "MUST", "SHOULD": "SHOULD", "SHOULD NOT": "SHOULD"}


def normalise(text: str) -> str:
    """Whitespace collapsed to single spaces, line-break hyphenation undone."""
    return _BROKEN_HYPHEN.sub("-", " ".join(text.split()))


def quote_pieces(quote: str) -> list[str]:
    """The quote's verbatim pieces: split at `[...]`, each normalised, empty ones dropped."""
    return [p for p in (normalise(piece) for piece in ELLIPSIS.split(quote)) if p]


def missing_piece(section_text: str, quote: str) -> str | None:
    """The first piece of the quote not found (after the previous one) in the section; None if all are."""
    text = normalise(section_text)
    at = 0
    for piece in quote_pieces(quote):
        found = text.find(piece, at)
        if found < 0:
            return piece
        at = found + len(piece)
    return None


@dataclass(frozen=True)
class RfcText:
    """One RFC's lines with page furniture removed, and where each section heading is."""

    number: str
    lines: tuple[str, ...]
    headings: tuple[tuple[int, str], ...]  # (line index, section number such as "4.1.1.4" or "F.6")

    @classmethod
    def parse(cls, number: str, raw: str) -> RfcText:
        lines: list[str] = []
        headings: list[tuple[int, str]] = []
        for line in raw.replace("\r\n", "\n").split("\n"):
            line = line.replace("\f", "")
            if _FOOTER.match(line) or _HEADER.match(line):
                continue
            heading = _HEADING.match(line)
            if heading:
                headings.append((len(lines), heading.group(1) + heading.group(2)))
            lines.append(line)
        return cls(number, tuple(lines), tuple(headings))

    def section(self, number: str) -> str | None:
        """The text of a section with its subsections (heading included), or None if there is no such one."""
        start = next((i for i, (_, sec) in enumerate(self.headings) if sec == number), None)
        if start is None:
            return None
        first = self.headings[start][0]
        last = len(self.lines)
        for line, sec in self.headings[start + 1:]:
            if not sec.startswith(number + "."):
                last = line
                break
        return "\n".join(self.lines[first:last])


@dataclass
class QuoteChecker:
    """Checks quotes against the RFC texts in `rfc_dir` (default: the package's own copies); reads each once."""

    rfc_dir: Traversable | Path | None = None
    _texts: dict[str, RfcText | None] = field(default_factory=dict)

    def text(self, rfc: str) -> RfcText | None:
        if rfc not in self._texts:
            folder = self.rfc_dir if self.rfc_dir is not None else resources.files("conformance") / "data" / "rfc"
            path = folder / f"rfc{rfc}.txt"
            self._texts[rfc] = RfcText.parse(rfc, path.read_text(encoding="utf-8")) if path.is_file() else None
        return self._texts[rfc]

    def problem(self, rfc: str, section: str, quote: str) -> str | None:
        """`quote is not verbatim in RFC NNNN §S: "first piece not found"`, or None when the quote is verbatim.

        An RFC whose text is not shipped cannot be checked, and is not reported."""
        text = self.text(rfc)
        if text is None:
            return None
        head = f"quote is not verbatim in RFC {rfc} §{section}"
        body = text.section(section)
        if body is None:
            return f"{head}: RFC {rfc} has no section {section}"
        piece = missing_piece(body, quote)
        if piece is None:
            return None
        shown = piece if len(piece) <= 100 else piece[:97] + "..."
        return f'{head}: "{shown}" not found'


def carries_level(level: str, quote: str) -> bool:
    """Whether the quote holds a BCP 14 keyword of the level's strength (MUST: MUST/REQUIRED/SHALL; SHOULD:
    SHOULD/RECOMMENDED). Levels other than MUST/SHOULD (and their NOTs) need no keyword."""
    strength = LEVEL_STRENGTH.get(level)
    return strength is None or bool(KEYWORDS[strength].search(quote))


def level_problem(level: str, quote: str, level_from: str | None) -> str | None:
    if carries_level(level, quote) or (level_from or "").strip():
        return None
    return f"level {level} is not carried by the quote; add the keyword or level_from"
