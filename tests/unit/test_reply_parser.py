"""The reply parser: RFC 5321 §4.2 syntax, findings for deviations, bounds against floods."""

from __future__ import annotations

from conformance.reply import MAX_LINE, MAX_LINES, ReplyParser


def parse(data: bytes, eof: bool = False):
    parser = ReplyParser()
    parser.feed(data)
    return parser, parser.next_reply(eof=eof)


def test_single_line() -> None:
    parser, reply = parse(b"250 2.1.0 OK\r\nrest")
    assert reply is not None and reply.code == 250
    assert reply.lines == [b"250 2.1.0 OK"]
    assert reply.enhanced == "2.1.0"
    assert reply.findings == []
    assert parser.pending() == b"rest"


def test_multi_line_ehlo_and_keywords() -> None:
    _, reply = parse(b"250-mx.example.test hello\r\n250-SIZE 1000\r\n250-8bitmime\r\n250 HELP\r\n")
    assert reply.code == 250 and len(reply.lines) == 4
    assert reply.keywords() == ["SIZE 1000", "8BITMIME", "HELP"]
    assert reply.findings == []


def test_incomplete_reply_waits_for_more() -> None:
    parser, reply = parse(b"250-first\r\n250 sec")
    assert reply is None
    parser.feed(b"ond\r\n")
    reply = parser.next_reply()
    assert reply is not None and reply.text == "first\nsecond"


def test_code_alone_is_a_reply() -> None:
    _, reply = parse(b"250\r\n")
    assert reply.code == 250 and reply.findings == []


def test_bare_lf_is_a_finding_but_still_parsed() -> None:
    _, reply = parse(b"250-a\n250 b\n")
    assert reply.code == 250 and len(reply.lines) == 2
    assert any("bare LF" in f for f in reply.findings)


def test_mixed_codes_in_multiline() -> None:
    _, reply = parse(b"250-a\r\n251-b\r\n250 c\r\n")
    assert any("mixes codes 250 and 251" in f for f in reply.findings)


def test_missing_space_after_code() -> None:
    _, reply = parse(b"250OK\r\n")
    assert reply.code == 250
    assert any("not followed by space" in f for f in reply.findings)


def test_garbage_is_a_reply_without_code() -> None:
    _, reply = parse(b"\x00\xff garbage\r\n")
    assert reply.code is None
    assert reply.summary() == "\\x00\\xff garbage"


def test_out_of_range_code() -> None:
    _, reply = parse(b"600 what\r\n")
    assert any("outside 2yz-5yz" in f for f in reply.findings)


def test_over_long_line_finding() -> None:
    _, reply = parse(b"250 " + b"x" * 600 + b"\r\n")
    assert reply.code == 250
    assert any("exceeds 512" in f for f in reply.findings)


def test_flood_without_line_end_is_cut() -> None:
    parser, reply = parse(b"A" * (MAX_LINE + 10))
    assert reply is not None and reply.truncated
    assert any("no line end" in f for f in reply.findings)
    assert parser.pending() == b""


def test_endless_multiline_is_cut() -> None:
    parser, reply = parse(b"220-x\r\n" * (MAX_LINES + 5))
    assert reply is not None and reply.truncated
    assert reply.code == 220
    assert any("multi-line reply longer" in f for f in reply.findings)


def test_partial_reply_at_eof() -> None:
    _, reply = parse(b"250-a\r\n250 b", eof=True)
    assert reply is not None and reply.code == 250
    assert any("closed in the middle" in f for f in reply.findings)


def test_two_replies_in_one_buffer() -> None:
    parser, first = parse(b"250 one\r\n354 two\r\n")
    second = parser.next_reply()
    assert (first.code, second.code) == (250, 354)


def test_enhanced_code_only_at_start() -> None:
    _, reply = parse(b"250 ok 2.1.0\r\n")
    assert reply.enhanced is None
