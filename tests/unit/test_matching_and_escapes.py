"""Expectation matching, templates, dot-stuffing and transcript escaping."""

from __future__ import annotations

import base64

import pytest

from conformance.connection import Event
from conformance.dialogue import dot_stuff, matches
from conformance.escapes import EscapeError, decode_escapes, escape_bytes
from conformance.model import Alternative, Level, Outcome
from conformance.reply import Reply, ReplyParser
from conformance.templates import TemplateError, credential_values, parse_template, render
from conformance.transcript import MAX_RECORDED, Transcript


def reply(raw: bytes) -> Reply:
    parser = ReplyParser()
    parser.feed(raw)
    result = parser.next_reply()
    assert result is not None
    return result


@pytest.mark.parametrize(("alt", "raw", "ok"), [
    (Alternative(codes=("250",)), b"250 ok\r\n", True),
    (Alternative(codes=("250",)), b"251 ok\r\n", False),
    (Alternative(codes=("2xx",)), b"252 ok\r\n", True),
    (Alternative(codes=("5x1",)), b"551 no\r\n", True),
    (Alternative(codes=("5x1",)), b"550 no\r\n", False),
    (Alternative(codes=("503", "554")), b"554 no\r\n", True),
    (Alternative(), b"421 bye\r\n", True),
    (Alternative(codes=("550",), enhanced="5.1.1"), b"550 5.1.1 unknown\r\n", True),
    (Alternative(codes=("550",), enhanced="5.1.1"), b"550 5.7.1 relay\r\n", False),
    (Alternative(codes=("550",), enhanced="5.x.x"), b"550 5.7.1 relay\r\n", True),
    (Alternative(codes=("550",), enhanced="5.x.x"), b"550 relay denied\r\n", False),
    (Alternative(codes=("250",), text="(?i)hello"), b"250 HELLO there\r\n", True),
    (Alternative(codes=("250",), text="^mx\\."), b"250-mx.example\r\n250 SIZE\r\n", True),
    (Alternative(close="clean"), b"250 ok\r\n", False),
])
def test_reply_alternatives(alt: Alternative, raw: bytes, ok: bool) -> None:
    assert matches(alt, reply(raw)) is ok


def test_malformed_reply_matches_nothing_but_close_alternatives() -> None:
    garbage = reply(b"garbage\r\n")
    assert garbage.code is None
    assert not matches(Alternative(), garbage)


@pytest.mark.parametrize(("alt", "event", "ok"), [
    (Alternative(close="clean"), Event("closed"), True),
    (Alternative(close="clean"), Event("reset"), False),
    (Alternative(close="reset"), Event("reset"), True),
    (Alternative(close="any"), Event("reset"), True),
    (Alternative(close="any"), Event("timeout"), False),
    (Alternative(silence=True), Event("timeout"), True),
    (Alternative(silence=True), Event("timeout", partial=b"25"), False),
    (Alternative(codes=("250",)), Event("closed"), False),
])
def test_event_alternatives(alt: Alternative, event: Event, ok: bool) -> None:
    assert matches(alt, event) is ok


def test_levels_decide_what_a_miss_costs() -> None:
    assert Level.MUST.miss_outcome is Outcome.FAIL
    assert Level.MUST_NOT.miss_outcome is Outcome.FAIL
    assert Level.SHOULD.miss_outcome is Outcome.NON_STRICT
    assert Level.MAY.miss_outcome is Outcome.INFO
    assert Level.INFO.miss_outcome is Outcome.INFO


def test_escapes_roundtrip_every_octet() -> None:
    data = bytes(range(256)) + b"\\r"
    assert decode_escapes(escape_bytes(data)) == data


def test_escape_display() -> None:
    assert escape_bytes(b"250 ok\r\n") == "250 ok\\r\\n"
    assert escape_bytes(b"<script>\x00\xff") == "<script>\\x00\\xff"
    assert decode_escapes("a\\x41\\0é") == b"aA\x00\xc3\xa9"
    with pytest.raises(EscapeError):
        decode_escapes("\\q")
    with pytest.raises(EscapeError):
        decode_escapes("\\x4")


def test_templates() -> None:
    values = {"rcpt": "user@example.test", "domain": "example.test"}
    assert render(parse_template("RCPT TO:<{rcpt}>"), values) == b"RCPT TO:<user@example.test>"
    assert render(parse_template("{{literal}}"), values) == b"{literal}"
    assert render(parse_template("<{repeat:a:3}@{domain}>"), values) == b"<aaa@example.test>"
    assert render(parse_template("{repeat:x\\r\\n:2}"), values) == b"x\r\nx\r\n"
    for bad in ("{nope}", "{unclosed", "stray}", "{repeat:a}", "{repeat:a:99999999999}"):
        with pytest.raises(TemplateError):
            parse_template(bad)


def test_variable_values_are_not_unescaped() -> None:
    """A password with a backslash is sent as is, not read as an escape."""
    values = credential_values("u", "p\\x41")
    assert render(parse_template("{password}"), values) == b"p\\x41"


def test_dot_stuffing() -> None:
    assert dot_stuff(b"a\n.b\n..\n.\nend") == b"a\r\n..b\r\n...\r\n..\r\nend\r\n.\r\n"
    assert dot_stuff(b"x\r\n") == b"x\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"


def test_transcript_is_bounded_and_escaped() -> None:
    transcript = Transcript()
    transcript.received(b"220 <script>\r\n")
    transcript.received(b"A" * (MAX_RECORDED + 100))
    transcript.sent(b"QUIT\r\n")
    out = transcript.as_json()
    assert out[0]["data"] == "220 <script>\\r\\n"
    assert sum(len(e["data"]) for e in out if e["dir"] == "S") <= MAX_RECORDED + 20
    assert any("server octets elided" in str(e["data"]) for e in out)


def test_text_patterns_take_variables_literally() -> None:
    values = {"rcpt": "a.b+c@example.test"}
    assert matches(Alternative(codes=("250",), text="<{rcpt}>"), reply(b"250 <a.b+c@example.test> ok\r\n"), values)
    assert not matches(Alternative(codes=("250",), text="<{rcpt}>"), reply(b"250 <aXb+c@example.test>\r\n"), values)
    assert matches(Alternative(codes=("250",), text=r"\d{3}"), reply(b"250 123\r\n"), values)


def test_base64_of_a_composed_text() -> None:
    values = credential_values("u@x", "p{w}")
    template = parse_template("AUTH PLAIN {base64:\\xe2\\x80\\x8b\\0{user}\\0{password}}")
    assert {"user", "password"} <= template.variables
    assert render(template, values) == b"AUTH PLAIN " + base64.b64encode("\u200b\0u@x\0p{w}".encode())
    for bad in ("{base64:abc", "{base64:{nope}}"):
        with pytest.raises(TemplateError):
            parse_template(bad)


def test_transcript_caps_hold_for_a_200_mb_flood() -> None:
    from conformance.transcript import MAX_JSON_CHARS

    transcript = Transcript()
    transcript.sent(b"EHLO x\r\n")
    piece = b"\x00\xff" * 32 * 1024
    for _ in range(200 * 1024 * 1024 // len(piece)):
        transcript.received(piece)
    transcript.sent(b"QUIT\r\n")
    assert transcript.recorded["S"] <= MAX_RECORDED
    assert transcript.recorded["S"] + transcript.dropped["S"] == 200 * 1024 * 1024
    out = transcript.as_json()
    assert sum(len(str(e["data"])) for e in out) <= MAX_JSON_CHARS + 1000
    assert any("server octets elided" in str(e["data"]) for e in out)
    assert len(transcript.entries) < 2100


def test_transcript_keeps_the_commands_after_a_big_message() -> None:
    transcript = Transcript()
    transcript.sent(b"X" * 10 * 1024 * 1024)
    transcript.received(b"250 ok\r\n")
    transcript.sent(b"QUIT\r\n")
    texts = [str(e["data"]) for e in transcript.as_json(max_chars=10**9)]
    assert "QUIT\\r\\n" in texts and "250 ok\\r\\n" in texts
    assert any("client octets elided" in t for t in texts)
