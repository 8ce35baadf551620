"""Engine features for the stored form (contract C5): capture, pad_to, and the delivered-message checks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conformance.cli import main as cli_main
from conformance.dialogue import (
    Dialogue,
    DialogueResult,
    Endpoint,
    Settings,
    crlf_message,
    padded_message,
    parse_octets,
)
from conformance.loader import Loader
from conformance.model import Outcome, Scenario

HEAD = "id: unit-case\ntitle: a unit case\nrfc: 1870\nsection: '4'\nlevel: MUST\nquote: a sentence for the unit test\n"


def write_scenario(tmp_path: Path, steps: str, extra: str = "") -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    path = folder / "s.yaml"
    path.write_text(HEAD + extra + "steps:\n" + steps)
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
                writer.write(b"552 5.3.4 too big\r\n" if len(data) > self.limit else b"250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 2.0.0 ok\r\n")
            await writer.drain()
        writer.close()


def play(scenario: Scenario, server: TinyServer, settings: Settings | None = None) -> DialogueResult:
    async def main() -> DialogueResult:
        listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        async with listener:
            values = {"domain": "example.test", "rcpt": "user@example.test", "sender": "a@example.net",
                      "client": "client.example.net"}
            return await Dialogue(scenario, Endpoint("127.0.0.1", port), values, settings or Settings(timeout=5)).run()

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
    assert result.decisive is not None and result.decisive.source.line == 9  # the EHLO step
    assert not any(c.startswith("MAIL") for c in server.commands)


def test_capture_after_a_failed_reply_keeps_the_fail(tmp_path: Path) -> None:
    scenario = load(tmp_path, GREET + "  - send: EHLO x\n    expect: 220\n    capture: {size: 'SIZE (\\d+)'}\n")
    assert play(scenario, TinyServer()).outcome is Outcome.FAIL


def test_capture_problems_are_file_line(tmp_path: Path) -> None:
    found = problems(tmp_path, GREET + "  - send: EHLO x\n    expect: 250\n    capture: {size: 'SIZE (\\d+'}\n")
    assert found and found[0].startswith("11: capture size: bad regular expression")
    found = problems(tmp_path, GREET + "  - send: EHLO x\n    expect: 250\n    capture: {rcpt: 'x'}\n")
    assert found and found[0].startswith("11: capture name 'rcpt' would hide")
    found = problems(tmp_path, GREET + "  - send: EHLO x\n    capture: {size: 'x'}\n")
    assert found and "needs an expect" in found[0]
    found = problems(tmp_path, GREET + "  - send: EHLO x\n    expect: 250\n    capture: {Size: 'x'}\n")
    assert found and found[0].startswith("11:")
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
    assert found and found[0].startswith("10: pad_to: {size} is not captured")
    found = problems(tmp_path, GREET + "  - send: x\n    pad_to: 5\n")
    assert found and found[0].startswith("10: 'pad_to' cannot go with 'send'")
    found = problems(tmp_path, GREET + "  - message: x\n    pad_to: '{size}*2'\n")
    assert found and found[0].startswith("10:")


def test_probe_cap_sizes() -> None:
    assert parse_octets("52428800") == 52428800
    assert parse_octets("50M") == parse_octets("50MiB") == parse_octets("50mb") == 50 * 1024 * 1024
    assert parse_octets("512K") == 512 * 1024 and parse_octets("1G") == 1024 ** 3
    with pytest.raises(ValueError):
        parse_octets("fifty")


def test_probe_cap_option_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["run", "--probe-cap", "lots"]) == 2
    assert "--probe-cap: 'lots' is not a size" in capsys.readouterr().err
