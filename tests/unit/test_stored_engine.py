"""Engine features for the stored form (contract C5): capture, pad_to, and the delivered-message checks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conformance.cli import main as cli_main
from conformance.dialogue import (
    PROBE_CAP,
    Dialogue,
    DialogueResult,
    Settings,
    byte_diff,
    crlf_message,
    padded_message,
    parse_octets,
)
from conformance.loader import Loader
from conformance.mailbox import Mailbox, MaildirMailbox
from conformance.model import Outcome, Scenario, Write
from conformance.targets.base import Endpoint

HEAD = "id: unit-case\ntitle: a unit case\nrfc: 1870\nsection: '4'\nlevel: MUST\nquote: a sentence for the unit test\n"


def write_scenario(tmp_path: Path, steps: str, extra: str = "") -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    path = folder / "s.yaml"
    stored = "stored: checked\n" if "delivered" in steps else "stored: unchecked\n"
    path.write_text(HEAD + extra + stored + "steps:\n" + steps)
    return path


def load(tmp_path: Path, steps: str, extra: str = "") -> Scenario:
    scenarios, problems = Loader().load_file(write_scenario(tmp_path, steps, extra))
    assert not problems, [str(p) for p in problems]
    return scenarios[0]


def problems(tmp_path: Path, steps: str, extra: str = "") -> list[str]:
    _, found = Loader().load_file(write_scenario(tmp_path, steps, extra))
    return [f"{p.line}: {p.message}" for p in found]


@dataclass
class TinyServer:
    """A small SMTP server for engine tests: EHLO advertises `ehlo`, DATA is unstuffed and recorded, a message
    over `limit` octets (RFC 1870 count) is refused with 552."""

    ehlo: list[str] = field(default_factory=lambda: ["tiny.example.test", "SIZE 1000", "PIPELINING"])
    limit: int = 1000
    messages: list[bytes] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    maildir: Path | None = None  # where accepted messages are stored, through `store`
    store: Callable[[bytes, list[str]], list[bytes]] | None = None  # message, recipients → the copies stored
    rcpts: list[str] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 tiny.example.test ESMTP\r\n")
        while line := await reader.readline():
            command = line.decode("latin-1").rstrip("\r\n")
            self.commands.append(command)
            verb = command.split(" ")[0].upper()
            if verb == "EHLO":
                writer.write("".join(f"250{'-' if i < len(self.ehlo) - 1 else ' '}{k}\r\n"
                                     for i, k in enumerate(self.ehlo)).encode())
            elif verb == "DATA":
                writer.write(b"354 go ahead\r\n")
                data = bytearray()
                while (got := await reader.readline()) != b".\r\n":
                    if not got:
                        writer.close()
                        return
                    data += got[1:] if got.startswith(b".") else got
                self.messages.append(bytes(data))
                if self.maildir is not None and len(data) <= self.limit:
                    store = self.store or (lambda message, rcpts: [b"Received: by tiny\r\n" + message])
                    for n, copy in enumerate(store(bytes(data), self.rcpts)):
                        (self.maildir / "new").mkdir(parents=True, exist_ok=True)
                        (self.maildir / "new" / f"{len(self.messages)}.{n}.tiny").write_bytes(copy)
                writer.write(b"552 5.3.4 too big\r\n" if len(data) > self.limit else b"250 2.0.0 ok\r\n")
            elif verb == "RCPT":
                self.rcpts.append(command.split(":", 1)[1].strip().strip("<>"))
                writer.write(b"250 2.1.5 ok\r\n")
            elif verb in ("RSET", "MAIL"):
                self.rcpts = []
                writer.write(b"250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 2.0.0 ok\r\n")
            await writer.drain()
        writer.close()


def play(scenario: Scenario, server: TinyServer, settings: Settings | None = None,
         mailbox: Mailbox | None = None) -> DialogueResult:
    async def main() -> DialogueResult:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        async with listener:
            values = {"domain": "example.test", "rcpt": "user@example.test", "sender": "a@example.net",
                      "client": "client.example.net"}
            if mailbox is None and server.maildir is not None:
                box: Mailbox | None = MaildirMailbox(str(server.maildir), f"maildir:{server.maildir}")
            else:
                box = mailbox
            return await Dialogue(scenario, Endpoint("127.0.0.1", port), values,
                                  settings or Settings(timeout=5, delivery_timeout=1.5), mailbox=box).run()

    return asyncio.run(main())


GREET = "  - expect: 220\n"
EHLO_SIZE = "  - send: EHLO x\n    expect: 250\n    capture: {size: 'SIZE (\\d+)'}\n"


# ----- capture ---------------------------------------------------------------------------------------------
def test_capture_feeds_later_commands_base64_and_reply_patterns(tmp_path: Path) -> None:
    scenario = load(tmp_path, GREET + EHLO_SIZE + "  - send: 'MAIL FROM:<a@b> SIZE={size}'\n"
                    "    expect: {code: 250, text: 'ok$'}\n"
                    "  - send: 'NOOP {base64:{size}}'\n    expect: 250\n"
                    "  - send: NOOP\n    expect:\n      - {code: 250, text: 'never {size}', outcome: fail}\n"
                    "      - 250\n")
    server = TinyServer()
    result = play(scenario, server)
    assert result.outcome is Outcome.PASS, result.message
    assert "MAIL FROM:<a@b> SIZE=1000" in server.commands
    assert "NOOP MTAwMA==" in server.commands


def test_capture_whole_match_without_a_group(tmp_path: Path) -> None:
    scenario = load(tmp_path, GREET + "  - send: EHLO x\n    expect: 250\n    capture: {kw: 'PIPE\\w+'}\n"
                    "  - send: 'NOOP {kw}'\n    expect: 250\n")
    server = TinyServer()
    assert play(scenario, server).outcome is Outcome.PASS
    assert "NOOP PIPELINING" in server.commands


def test_capture_in_a_reply_pattern_is_literal_text(tmp_path: Path) -> None:
    # the captured value "1000" is matched as text; a reply pattern with a regex-special value would not misfire
    scenario = load(tmp_path, GREET + EHLO_SIZE + "  - send: EHLO y\n    expect: {code: 250, text: 'SIZE {size}\\n'}\n")
    assert play(scenario, TinyServer()).outcome is Outcome.PASS
    scenario = load(tmp_path, GREET + EHLO_SIZE + "  - send: EHLO y\n    expect: {code: 250, text: 'SIZE {size}0'}\n")
    assert play(scenario, TinyServer()).outcome is Outcome.FAIL


def test_capture_without_a_match_is_unsupported_missing_parameter(tmp_path: Path) -> None:
    scenario = load(tmp_path, GREET + EHLO_SIZE + "  - send: 'MAIL FROM:<> SIZE={size}'\n    expect: 250\n")
    server = TinyServer(ehlo=["tiny.example.test", "PIPELINING"])
    result = play(scenario, server)
    assert result.outcome is Outcome.UNSUPPORTED
    assert result.cause == "missing-parameter"
    assert "capture size" in result.message
    assert result.decisive is not None and result.decisive.source.line == 10  # the EHLO step
    assert not any(c.startswith("MAIL") for c in server.commands)


def test_capture_after_a_failed_reply_keeps_the_fail(tmp_path: Path) -> None:
    scenario = load(tmp_path, GREET + "  - send: EHLO x\n    expect: 220\n    capture: {size: 'SIZE (\\d+)'}\n")
    assert play(scenario, TinyServer()).outcome is Outcome.FAIL


def test_capture_problems_are_file_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GREET + "  - send: EHLO x\n    expect: 250\n    capture: {size: 'SIZE (\\d+'}\n")
    assert found and found[0].startswith("12: capture size: bad regular expression 'SIZE (\\\\d+'")
    found = problems(tmp_path, GREET + "  - send: \"NOOP {a\\nb}\"\n")
    assert found and found[0].startswith("10: send: unknown variable '{a…}'") and "\n" not in found[0]
    found = problems(tmp_path, GREET + "  - send: EHLO x\n    expect: 250\n    capture: {rcpt: 'x'}\n")
    assert found and found[0].startswith("12: capture name 'rcpt' would hide")
    found = problems(tmp_path, GREET + "  - send: EHLO x\n    capture: {size: 'x'}\n")
    assert found and "needs an expect" in found[0]
    found = problems(tmp_path, GREET + "  - send: EHLO x\n    expect: 250\n    capture: {Size: 'x'}\n")
    assert found and found[0].startswith("12:")
    # used before the step that captures it
    found = problems(tmp_path, GREET + "  - send: 'NOOP {size}'\n    expect: 250\n" + EHLO_SIZE)
    assert found and "unknown variable '{size}'" in found[0]
    # a step cannot use its own capture in what it sends
    found = problems(tmp_path, GREET + "  - send: 'EHLO {size}'\n    expect: 250\n    capture: {size: 'x'}\n")
    assert found and "unknown variable '{size}'" in found[0]


def test_capture_in_pipelined_items_and_lone_expect(tmp_path: Path) -> None:
    scenario = load(tmp_path, GREET + "  - pipeline:\n      - send: EHLO x\n        expect: 250\n"
                    "        capture: {size: 'SIZE (\\d+)'}\n      - send: NOOP\n        expect: 250\n"
                    "  - send: EHLO again\n  - expect: 250\n    capture: {host: '^(\\S+)'}\n"
                    "  - send: 'NOOP {size} {host}'\n    expect: 250\n")
    server = TinyServer()
    assert play(scenario, server).outcome is Outcome.PASS
    assert "NOOP 1000 tiny.example.test" in server.commands


# ----- pad_to ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"Subject: x\n\nhello\n", b"Subject: x\n\n.dot\nend", b"Subject: x\r\n\r\n"])
def test_padded_message_counts_exactly(body: bytes) -> None:
    base = len(crlf_message(body))
    for octets in [base, *range(base + 1, base + 200), base + 4096, base + 4097]:
        data = padded_message(body, octets)
        assert data is not None and data.endswith(b"\r\n.\r\n")
        lines = data[:-3].split(b"\r\n")[:-1]
        unstuffed = b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)
        assert len(unstuffed) == octets, (body, octets)
        assert unstuffed.startswith(crlf_message(body)[:-2])
        assert all(len(line) <= 998 for line in lines)
    assert padded_message(body, base - 1) is None


def test_pad_to_reaches_the_captured_size_and_one_more(tmp_path: Path) -> None:
    transaction = "  - send: MAIL FROM:<>\n    expect: 250\n  - send: RCPT TO:<{rcpt}>\n    expect: 250\n"
    steps = (GREET + EHLO_SIZE + transaction +
             "  - send: DATA\n    expect: 354\n  - message: \"Subject: {token}\\n\\n.body\\n\"\n"
             "    pad_to: '{size}'\n    expect: 250\n" + transaction +
             "  - send: DATA\n    expect: 354\n  - message: \"Subject: {token}\\n\\nbody\\n\"\n"
             "    pad_to: '{size} + 1'\n    expect: 552\n")
    server = TinyServer()
    result = play(load(tmp_path, steps), server)
    assert result.outcome is Outcome.PASS, result.message
    assert [len(m) for m in server.messages] == [1000, 1001]
    assert b"\r\n.body\r\n" in server.messages[0]


def test_pad_to_forms(tmp_path: Path) -> None:
    for expr, octets in (("300", 300), ("'{size}-10'", 990), ("'{size}'", 1000)):
        steps = (GREET + EHLO_SIZE + "  - send: DATA\n    expect: 354\n  - message: \"Subject: x\\n\\nbody\\n\"\n"
                 f"    pad_to: {expr}\n    expect: [250, 552]\n")
        server = TinyServer()
        assert play(load(tmp_path, steps), server).outcome is Outcome.PASS
        assert len(server.messages[0]) == octets


def test_pad_to_above_the_cap_is_info(tmp_path: Path) -> None:
    steps = (GREET + EHLO_SIZE + "  - send: DATA\n    expect: 354\n  - message: \"Subject: x\\n\\nbody\\n\"\n"
             "    pad_to: '{size}+1'\n    expect: 552\n")
    server = TinyServer()
    result = play(load(tmp_path, steps), server, Settings(timeout=5, probe_cap=1000))
    assert result.outcome is Outcome.INFO
    assert "limit too large to probe (1001 octets > 1000" in result.message
    assert server.messages == []


def test_pad_to_smaller_than_the_message_is_unsupported(tmp_path: Path) -> None:
    steps = (GREET + "  - send: DATA\n    expect: 354\n  - message: \"Subject: x\\n\\nbody\\n\"\n"
             "    pad_to: 5\n    expect: 250\n")
    result = play(load(tmp_path, steps), TinyServer())
    assert result.outcome is Outcome.UNSUPPORTED
    assert result.cause == "missing-parameter"


def test_pad_to_problems_are_file_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GREET + "  - message: x\n    pad_to: '{size}'\n")
    assert found and found[0].startswith("11: pad_to: {size} is not captured")
    found = problems(tmp_path, GREET + "  - send: x\n    pad_to: 5\n")
    assert found and found[0].startswith("11: 'pad_to' cannot go with 'send'")
    found = problems(tmp_path, GREET + "  - message: x\n    pad_to: '{size}*2'\n")
    assert found and found[0].startswith("11:")


def test_probe_cap_sizes() -> None:
    assert parse_octets("52428800") == 52428800
    assert parse_octets("50M") == parse_octets("50MB") == parse_octets("50mb") == 50_000_000 == PROBE_CAP
    assert parse_octets("50MiB") == parse_octets("50mib") == 50 * 1024 * 1024
    assert parse_octets("512K") == 512_000 and parse_octets("1GiB") == 1024 ** 3
    with pytest.raises(ValueError):
        parse_octets("fifty")


def test_probe_cap_option_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", "--probe-cap", "lots"]) == 2
    assert "--probe-cap: 'lots' is not a size" in capsys.readouterr().err


# ----- delivered: body, sent_headers, rcpt, count range --------------------------------------------------
def send_message(message: str, rcpts: tuple[str, ...] = ("{rcpt}",)) -> str:
    out = GREET + "  - send: EHLO x\n    expect: 250\n  - send: MAIL FROM:<>\n    expect: 250\n"
    for rcpt in rcpts:
        out += f"  - send: RCPT TO:<{rcpt}>\n    expect: 250\n"
    return out + f"  - send: DATA\n    expect: 354\n  - message: {message}\n    expect: 250\n"


STUFFED = "\"Subject: {token}\\nX-A: 1\\n\\n.text\\n.\\nend\\n\""  # two lines the client dot-stuffs


def test_body_is_compared_byte_exact(tmp_path: Path) -> None:
    steps = send_message(STUFFED) + "  - delivered: {body: \".text\\n\\nend\\n\"}\n"
    server = TinyServer(maildir=tmp_path / "md")
    result = play(load(tmp_path, steps), server)
    assert result.outcome is Outcome.FAIL  # the stored "." line is not the empty line the check expects
    assert "first difference at offset 6 (line 2, column 1" in result.message


def test_body_passes_when_unstuffed_once_whatever_the_line_ends(tmp_path: Path) -> None:
    steps = send_message(STUFFED) + "  - delivered: {body: \".text\\n.\\nend\\n\"}\n"
    lf = TinyServer(maildir=tmp_path / "lf", store=lambda m, r: [b"Received: x\n" + m.replace(b"\r\n", b"\n")])
    assert play(load(tmp_path, steps), lf).outcome is Outcome.PASS
    crlf = TinyServer(maildir=tmp_path / "crlf")
    assert play(load(tmp_path, steps), crlf).outcome is Outcome.PASS


def test_body_catches_a_dot_left_stuffed_and_a_truncated_line(tmp_path: Path) -> None:
    steps = send_message(STUFFED) + "  - delivered: {body: \".text\\n.\\nend\\n\"}\n"
    kept = TinyServer(maildir=tmp_path / "kept", store=lambda m, r: [m.replace(b"\r\n.text", b"\r\n..text")])
    result = play(load(tmp_path, steps), kept)
    assert result.outcome is Outcome.FAIL
    assert "the stored body differs: first difference at offset 1 (line 1, column 2" in result.message
    assert "expected 'text\\n.\\nend\\n' but stored '.text\\n.\\nend\\n'" in result.message
    cut = TinyServer(maildir=tmp_path / "cut", store=lambda m, r: [m[:-5]])
    result = play(load(tmp_path, steps), cut)
    assert result.outcome is Outcome.FAIL and "expected 12 octets, stored 8" in result.message
    assert "expected 'end\\n' but stored (end)" in result.message


def test_byte_diff_reports_the_first_difference() -> None:
    assert byte_diff(b"same", b"same") is None
    diff = byte_diff(b"a" * 100 + b"XYZ", b"a" * 100 + b"XY")
    assert diff is not None and "offset 102" in diff and "expected 'Z' but stored (end)" in diff
    diff = byte_diff(b"line\n\x00b", b"line\n\x01b")
    assert diff is not None and "(line 2, column 1;" in diff and "'\\x00b'" in diff and "'\\x01b'" in diff


def test_sent_headers_follow_the_trace_fields_unchanged(tmp_path: Path) -> None:
    message = "\"Subject: {token}\\nX-Folded: a\\n  b\\nX-B: 2\\n\\nbody\\n\""
    steps = send_message(message) + "  - delivered: {sent_headers: true}\n"
    good = TinyServer(maildir=tmp_path / "good", store=lambda m, r: [b"Return-Path: <>\r\nReceived: x\r\n" + m])
    assert play(load(tmp_path, steps), good).outcome is Outcome.PASS
    unfolded = TinyServer(maildir=tmp_path / "unfolded", store=lambda m, r: [m.replace(b"a\r\n  b", b"a b")])
    result = play(load(tmp_path, steps), unfolded)
    assert result.outcome is Outcome.FAIL
    assert "'X-Folded: a\\n  b' the client sent is missing or changed; stored as 'X-Folded: a b'" in result.message

    def reorder(m: bytes, r: list[str]) -> list[bytes]:
        head, _, body = m.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        return [b"\r\n".join([lines[-1], *lines[:-1]]) + b"\r\n\r\n" + body]

    result = play(load(tmp_path, steps), TinyServer(maildir=tmp_path / "reordered", store=reorder))
    assert result.outcome is Outcome.FAIL and "not together in the order sent" in result.message


def test_sent_headers_with_bdat_chunks(tmp_path: Path) -> None:
    steps = (GREET + "  - send: EHLO x\n    expect: 250\n  - bdat: 'Subject: {token}\\r\\n'\n    expect: 250\n"
             "  - bdat: 'X-B: 2\\r\\n\\r\\nbody\\r\\n'\n    last: true\n    expect: 250\n"
             "  - delivered: {sent_headers: true}\n")
    scenario = load(tmp_path, steps)
    dialogue = Dialogue(scenario, Endpoint("127.0.0.1", 1), {}, Settings())
    for action in scenario.actions:
        if isinstance(action, Write):
            dialogue._payload_bytes(action.payloads[0])
    # the chunks joined, kept up to the header block's empty line (all sent_headers compares)
    assert dialogue.sent_messages == [f"Subject: {dialogue.token}\r\nX-B: 2\r\n\r\n".encode()]


def delivered_to(message: bytes, rcpts: list[str]) -> list[bytes]:
    return [f"Delivered-To: {r}\r\nReceived: x\r\n".encode() + message for r in rcpts]


def test_rcpt_finds_the_copy_for_that_recipient(tmp_path: Path) -> None:
    steps = (GREET + "  - send: EHLO x\n    expect: 250\n  - send: MAIL FROM:<>\n    expect: 250\n"
             "  - send: RCPT TO:<a@example.test>\n    expect: 250\n  - send: RSET\n    expect: 250\n"
             "  - send: MAIL FROM:<>\n    expect: 250\n  - send: RCPT TO:<B@Example.TEST>\n    expect: 250\n"
             "  - send: DATA\n    expect: 354\n  - message: \"Subject: {token}\\n\\nbody\\n\"\n    expect: 250\n"
             + "  - delivered: {rcpt: b@example.test, count: 1, body: \"body\\n\"}\n"
               "  - delivered: {rcpt: a@example.test, count: 0, timeout: 0.5}\n")
    scenario = load(tmp_path, steps)
    assert play(scenario, TinyServer(maildir=tmp_path / "good", store=delivered_to)).outcome is Outcome.PASS

    def keeps_a(message: bytes, rcpts: list[str]) -> list[bytes]:  # RSET forgot to clear the recipients
        return delivered_to(message, ["a@example.test", *rcpts])

    result = play(scenario, TinyServer(maildir=tmp_path / "keeps", store=keeps_a))
    assert result.outcome is Outcome.FAIL
    assert "1 stored message(s) with the token" in result.message and "for a@example.test" in result.message


def test_rcpt_from_received_for_and_x_rcptto(tmp_path: Path) -> None:
    steps = send_message("\"Subject: {token}\\n\\nbody\\n\"", ("a@example.test", "b@example.test")) + \
        "  - delivered: {rcpt: a@example.test}\n  - delivered: {rcpt: b@example.test}\n"
    scenario = load(tmp_path, steps)

    def received_for(message: bytes, rcpts: list[str]) -> list[bytes]:
        return [f"Received: from x\r\n\tby y with ESMTP id 1\r\n\tfor <{r}>; Sun, 6 Dec 2026\r\n".encode() + message
                for r in rcpts]

    def one_copy(message: bytes, rcpts: list[str]) -> list[bytes]:
        return [f"X-RcptTo: {', '.join(rcpts)}\r\n".encode() + message]

    assert play(scenario, TinyServer(maildir=tmp_path / "rf", store=received_for)).outcome is Outcome.PASS
    assert play(scenario, TinyServer(maildir=tmp_path / "one", store=one_copy)).outcome is Outcome.PASS
    result = play(scenario, TinyServer(maildir=tmp_path / "none"))
    assert result.outcome is Outcome.UNSUPPORTED and result.cause == "missing-parameter"
    assert "does not say which recipient" in result.message


def test_count_range(tmp_path: Path) -> None:
    steps = send_message("\"Subject: {token}\\n\\nbody\\n\"", ("a@example.test", "b@example.test"))
    scenario = load(tmp_path, steps + "  - delivered: {count: '1-2'}\n")
    assert play(scenario, TinyServer(maildir=tmp_path / "one")).outcome is Outcome.PASS
    assert play(scenario, TinyServer(maildir=tmp_path / "two", store=delivered_to)).outcome is Outcome.PASS
    scenario = load(tmp_path, steps + "  - delivered: {count: '2-2'}\n")
    result = play(scenario, TinyServer(maildir=tmp_path / "one-more"))
    assert result.outcome is Outcome.FAIL and "Expected: 2-2 stored message(s)" in result.message


def test_delivered_problems_are_file_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GREET + "  - delivered: {count: '3-1'}\n")
    assert found and found[0].startswith("10: count: '3-1' is not a range")
    found = problems(tmp_path, GREET + "  - delivered: {count: 'many'}\n")
    assert found and found[0].startswith("10:")
    found = problems(tmp_path, GREET + "  - delivered:\n      sent_headers: true\n")
    assert found and found[0].startswith("10: sent_headers: no message: or bdat: step comes before")
    found = problems(tmp_path, GREET + "  - delivered:\n      body: '{nope}'\n")
    assert found and found[0].startswith("11: body: unknown variable")


# ----- stored: checked | unchecked --------------------------------------------------------------------------
def raw_scenario(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "scenarios" / "raw.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(HEAD + text)
    _, found = Loader().load_file(path)
    return [f"{p.line}: {p.message}" for p in found]


MESSAGE_STEPS = "steps:\n  - send: DATA\n    expect: 354\n  - message: x\n    expect: 250\n"


def test_stored_is_required_when_message_content_is_sent(tmp_path: Path) -> None:
    for steps in (MESSAGE_STEPS, "steps:\n  - bdat: x\n    last: true\n",
                  "steps:\n  - raw: 'MAIL FROM:<>\\r\\nDATA\\r\\n'\n",
                  "steps:\n  - send: DATA\n    expect: 354\n  - raw: 'x\\r\\n.\\r\\n'\n"):
        found = raw_scenario(tmp_path, steps)
        assert found and found[0].startswith("7: this scenario sends message content"), (steps, found)
    assert raw_scenario(tmp_path, "steps:\n  - send: NOOP\n    expect: 250\n  - raw: 'x\\r\\n'\n") == []
    assert raw_scenario(tmp_path, "stored: unchecked\n" + MESSAGE_STEPS) == []


def test_stored_goes_just_before_steps_and_checked_needs_a_delivered_step(tmp_path: Path) -> None:
    found = raw_scenario(tmp_path, "stored: checked\n" + MESSAGE_STEPS)
    assert found == ["7: stored: checked needs a delivered step that reads what the server stored "
                     "(or say stored: unchecked)"]
    assert raw_scenario(tmp_path, "stored: checked\n" + MESSAGE_STEPS + "  - delivered: {count: 1}\n") == []
    found = raw_scenario(tmp_path, "stored: unchecked\ntags: [core]\n" + MESSAGE_STEPS)
    assert found == ["7: stored: write it on the line just before steps:"]
    found = raw_scenario(tmp_path, "stored: sometimes\n" + MESSAGE_STEPS)
    assert found and found[0].startswith("7: stored: 'sometimes' is not one of: checked, unchecked")


def test_stored_in_list_and_coverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "cat"
    folder.mkdir()
    (folder / "a.yaml").write_text(HEAD.replace("unit-case", "case-a") + "stored: checked\n" + MESSAGE_STEPS
                                   + "  - delivered: {count: 1}\n")
    (folder / "b.yaml").write_text(HEAD.replace("unit-case", "case-b") + "stored: unchecked\n" + MESSAGE_STEPS)
    (folder / "c.yaml").write_text(HEAD.replace("unit-case", "case-c") + "steps:\n  - send: NOOP\n")
    assert cli_main(["list", "--scenarios", str(folder), "--stored", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["id"], s["stored"]) for s in listed] == [("case-a", "checked")]
    assert cli_main(["list", "--scenarios", str(folder), "--format", "json"]) == 0
    assert {s["id"]: s["stored"] for s in json.loads(capsys.readouterr().out)} == {
        "case-a": "checked", "case-b": "unchecked", "case-c": None}
    assert cli_main(["coverage", "--scenarios", str(folder), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["stored"] == {"checked": ["case-a"], "unchecked": ["case-b"],
                                                             "undeclared": []}
    assert cli_main(["coverage", "--scenarios", str(folder)]) == 0
    assert "stored form: checked by 1 scenarios, unchecked in 1" in capsys.readouterr().out


def test_stored_recipients_from_trace_fields() -> None:
    from conformance.dialogue import stored_recipients

    assert stored_recipients(b"Received: from x\r\n\tby y id 1\r\n\tfor <A@Example.TEST>; Sun, 6 Dec 2026\r\n\r\nb") \
        == {"a@example.test"}
    assert stored_recipients(b"Received: from x by y for <a@e.test>, <b@e.test>; date\nX-A: 1\n\n") == \
        {"a@e.test", "b@e.test"}
    assert stored_recipients(b"Delivered-To: a@e.test\nX-Original-To: b@e.test\nEnvelope-to: c@e.test, d@e.test\n"
                             b"X-RcptTo: e@e.test\n\nDelivered-To: not@header.test\n") == \
        {"a@e.test", "b@e.test", "c@e.test", "d@e.test", "e@e.test"}
    assert stored_recipients(b"Received: from x by y; date\nTo: z@e.test\n\nbody") == set()


def test_captured_values_in_delivered_checks(tmp_path: Path) -> None:
    steps = (GREET + EHLO_SIZE + "  - send: MAIL FROM:<>\n    expect: 250\n"
             "  - send: RCPT TO:<{rcpt}>\n    expect: 250\n  - send: DATA\n    expect: 354\n"
             "  - message: \"Subject: {token}\\n\\nlimit {size}\\n\"\n    expect: 250\n"
             "  - delivered:\n      contains: ['limit {size}']\n      matches: ['^limit {size}$']\n"
             "      body: \"limit {size}\\n\"\n")
    assert play(load(tmp_path, steps), TinyServer(maildir=tmp_path / "md")).outcome is Outcome.PASS


def test_message_lines_sent_one_by_one_count_as_content(tmp_path: Path) -> None:
    steps = ("steps:\n  - send: DATA\n    expect: 354\n  - send: 'Subject: x'\n  - send: ''\n"
             "  - send: .\n    expect: 250\n")
    found = raw_scenario(tmp_path, steps)
    assert found and found[0].startswith("7: this scenario sends message content")
