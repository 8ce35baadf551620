"""Quotes are RFC text, in the cited section; MUST/SHOULD levels are carried by the quote's keyword."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from conformance.loader import Loader, load_requirement_ids
from conformance.quotes import QuoteChecker, RfcText, carries_level, level_problem, missing_piece

REPO = Path(__file__).resolve().parents[2]
RFC_DIR = REPO / "conformance" / "data" / "rfc"

# A two-page RFC in the RFC Editor's layout: a sentence runs over the page break, a word is broken at its
# hyphen at a line end, and §2.1 is a subsection of §2 while §3 is not.
TINY = """\
Network Working Group                                          A. Author
Request for Comments: 9999                                     June 2001


1.  Introduction

   This is the introduction.  The receiver-
   SMTP reads it.

2.  Rules

   A server MUST accept the
   command and then it MUST
   reply.  The client



Author                      Standards Track                     [Page 1]
\f
RFC 9999                     Tiny Protocol                     June 2001


   waits for the reply.

2.1.  Details

   The forward-
      path is kept.

3.  Other Things

   Nothing here MUST happen.

Appendix F.  Old Features

   Old features are listed here.

F.6.  SAML

   SAML is deprecated.

Author                      Standards Track                     [Page 2]
\f
"""


@pytest.fixture()
def tiny(tmp_path: Path) -> QuoteChecker:
    (tmp_path / "rfc9999.txt").write_text(TINY)
    return QuoteChecker(tmp_path)


def test_hyphenation_across_a_line_break_is_undone(tiny: QuoteChecker) -> None:
    assert tiny.problem("9999", "1", "The receiver-SMTP reads it.") is None
    assert tiny.problem("9999", "2.1", "The forward-path is kept.") is None
    # the hyphen is the RFC's: it is kept, not dropped
    assert tiny.problem("9999", "1", "The receiverSMTP reads it.") is not None


def test_page_footer_and_header_in_the_middle_of_a_sentence(tiny: QuoteChecker) -> None:
    assert tiny.problem("9999", "2", "and then it MUST reply. The client waits for the reply.") is None
    body = tiny.text("9999").section("2")
    assert "[Page" not in body and "\f" not in body and "Tiny Protocol" not in body


def test_pieces_split_at_ellipsis_must_appear_in_order(tiny: QuoteChecker) -> None:
    assert tiny.problem("9999", "2", "A server MUST accept the command [...] The client waits") is None
    assert tiny.problem("9999", "2", "A server MUST [...] reply. [...] waits for the reply.") is None
    # out of order: the second piece is not found after the first
    problem = tiny.problem("9999", "2", "The client waits [...] A server MUST accept")
    assert problem == 'quote is not verbatim in RFC 9999 §2: "A server MUST accept" not found'
    # without [...] the joined pieces are not verbatim
    assert tiny.problem("9999", "2", "A server MUST accept the command. The client waits") is not None


def test_quote_from_the_wrong_section(tiny: QuoteChecker) -> None:
    # §2 includes its subsection §2.1 but not §3; §2.1 does not include its parent's text
    assert tiny.problem("9999", "2", "The forward-path is kept.") is None
    assert tiny.problem("9999", "2", "Nothing here MUST happen.") == (
        'quote is not verbatim in RFC 9999 §2: "Nothing here MUST happen." not found')
    assert tiny.problem("9999", "2.1", "A server MUST accept the command") is not None
    assert tiny.problem("9999", "4", "Nothing here") == (
        "quote is not verbatim in RFC 9999 §4: RFC 9999 has no section 4")


def test_appendix_headings(tiny: QuoteChecker) -> None:
    assert tiny.problem("9999", "F", "Old features are listed here. [...] SAML is deprecated.") is None
    assert tiny.problem("9999", "F.6", "SAML is deprecated.") is None
    assert tiny.problem("9999", "F.6", "Old features are listed here.") is not None


def test_an_rfc_not_shipped_is_not_checked(tiny: QuoteChecker) -> None:
    assert tiny.problem("1234", "1", "anything at all") is None


def test_real_rfc_sections() -> None:
    checker = QuoteChecker()
    # RFC 5321 §4.1.1.4 refers to the procedure of §4.5.2; the procedure's own words are in §4.5.2 only
    stuffing = "Before sending a line of mail text, the SMTP client checks the first character of the line."
    assert checker.problem("5321", "4.5.2", stuffing) is None
    assert checker.problem("5321", "4.1.1.4", stuffing) is not None
    # a sentence split by a page break in the RFC (§4.1.1.4, pages 35-36)
    assert missing_piece(checker.text("5321").section("4.1.1.4"),
                         "The mail data are terminated by a line containing only a period") is None


def test_every_rfc_text_parses_into_sections() -> None:
    for path in sorted(RFC_DIR.glob("rfc*.txt")):
        text = RfcText.parse(path.stem[3:], path.read_text())
        numbers = [n for _, n in text.headings]
        assert numbers[0] == "1" and len(numbers) >= 6, path.name
        assert not any("[Page" in line or "\f" in line for line in text.lines), path.name
        # every running header went (RFC 3207's has a single space before its date)
        assert not any(line.startswith(f"RFC {text.number} ") for line in text.lines), path.name


def test_shipped_texts_are_unmodified() -> None:
    """Each file's sha256 is the one its README records for the RFC Editor's text."""
    readme = (RFC_DIR / "README.md").read_text()
    recorded = dict(re.findall(r"^\| (rfc\d+\.txt) \|.*?\| `([0-9a-f]{64})` \|", readme, re.M))
    files = sorted(p.name for p in RFC_DIR.glob("rfc*.txt"))
    assert files and sorted(recorded) == files
    for name in files:
        assert hashlib.sha256((RFC_DIR / name).read_bytes()).hexdigest() == recorded[name], name


@pytest.mark.parametrize(("level", "quote", "carried"), [
    ("MUST", "The server MUST reply.", True),
    ("MUST NOT", "It is REQUIRED that ...", True),
    ("MUST", "Servers SHALL NOT do that.", True),
    ("MUST", "The server SHOULD reply.", False),  # weaker keyword: not a MUST
    ("MUST", "The server must reply.", False),  # lowercase is not a BCP 14 keyword
    ("MUST", "The data are terminated by a line containing only a period.", False),
    ("SHOULD", "It is RECOMMENDED that ...", True),
    ("SHOULD NOT", "This is NOT RECOMMENDED.", True),
    ("SHOULD", "The server MAY reply.", False),
    ("MAY", "no keyword needed", True),
    ("INFO", "no keyword needed", True),
])
def test_level_carried_by_keyword(level: str, quote: str, carried: bool) -> None:
    assert carries_level(level, quote) is carried


def test_level_from_explains_a_keywordless_quote() -> None:
    quote = "The mail data are terminated by a line containing only a period."
    assert level_problem("MUST", quote, None) == (
        "level MUST is not carried by the quote; add the keyword or level_from")
    assert level_problem("MUST", quote, "§4.1.1.4 defines the end of the data: MUST by definition") is None


def test_catalog_quotes_are_verbatim_and_levels_carried() -> None:
    """The shipped catalog passes the checks `smtp-conformance validate` makes."""
    catalog = Loader(load_requirement_ids(), check_quotes=True).load_paths([REPO / "scenarios"])
    assert not catalog.problems, "\n".join(str(p) for p in catalog.problems)
    keywordless = [s for s in catalog.scenarios if not carries_level(s.level.value, s.quote)]
    assert all(s.level_from for s in keywordless)


def test_list_json_shows_level_from() -> None:
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "list", "--format", "json"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {row["id"]: row for row in json.loads(proc.stdout)}
    assert "§4.1.4" in rows["rfc6152-2-unknown-body-value-refused"]["level_from"]
    assert rows["rfc5321-4.3.2-rcpt-before-mail"]["level_from"] is None  # its quote carries MUST


def test_validate_reports_a_broken_quote_with_file_and_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    text = (REPO / "scenarios" / "rfc5321" / "4.1.1.9-noop.yaml").read_text()
    broken = text.replace("does not affect any parameters", "does not change any parameters", 1)
    assert broken != text
    (tmp_path / "noop.yaml").write_text(broken)
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "validate", str(tmp_path / "noop.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if "not verbatim" in line]
    assert len(lines) == 1
    assert re.match(r"^\S+noop\.yaml:\d+: quote is not verbatim in RFC 5321 §4\.1\.1\.9: ", lines[0])
    line = int(lines[0].split(":")[1])
    assert broken.splitlines()[line - 1].startswith("quote:")
