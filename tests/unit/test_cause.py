"""The engine records why a verdict is what it is (`cause`), and readers use it instead of the message text."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from conformance.dialogue import Dialogue, Settings
from conformance.failure import Failure, format_failure
from conformance.grading.explain import explain
from conformance.grading.score import unanswered
from conformance.loader import Loader
from conformance.model import Cause, Outcome
from conformance.results import Result
from conformance.targets.base import Endpoint

STEPS = "steps:\n  - expect: 220\n  - send: NOOP\n    expect: 250\n"


def scenario(tmp_path: Path, extra: str = ""):
    folder = tmp_path / "scenarios"
    folder.mkdir(exist_ok=True)
    path = folder / "s.yaml"
    path.write_text("id: cause-case\ntitle: a cause case\nrfc: 5321\nsection: '4.1.1.9'\nlevel: MUST\n"
                    "quote: a sentence for the unit test\n" + STEPS + extra)
    scenarios, problems = Loader().load_file(path)
    assert not problems, problems
    return scenarios[0]


async def against(tmp_path: Path, answer: bytes | None, close: bool = False):
    """Run the scenario against a loopback server that greets, then answers NOOP with `answer`."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 test ready\r\n")
        await writer.drain()
        await reader.readline()
        if answer is not None:
            writer.write(answer)
            await writer.drain()
        if close:
            writer.close()
            return
        await reader.read()  # silent until the client goes
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    s = scenario(tmp_path)
    async with server:
        result = await Dialogue(s, Endpoint("127.0.0.1", port), {}, Settings(timeout=0.5)).run()
    return s, result


def test_cause_names_what_came_back(tmp_path: Path) -> None:
    cases = [(b"500 no\r\n", False, Cause.REPLY_MISMATCH), (None, False, Cause.TIMEOUT),
             (None, True, Cause.CLOSED), (b"2x0 broken\r\n", False, Cause.MALFORMED)]
    for answer, close, cause in cases:
        _, result = asyncio.run(against(tmp_path, answer, close))
        assert (result.outcome, result.cause) == (Outcome.FAIL, cause), (answer, close, result.message)
    _, passed = asyncio.run(against(tmp_path, b"250 ok\r\n"))
    assert passed.outcome is Outcome.PASS and passed.cause is None


def test_refused_connection_is_an_error_with_cause_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the connection is refused
        result = asyncio.run(Dialogue(scenario(tmp_path), Endpoint("127.0.0.1", port), {}, Settings(timeout=1)).run())
    assert (result.outcome, result.cause) == (Outcome.ERROR, Cause.REFUSED)


def test_the_result_entry_carries_the_cause_and_readers_use_it(tmp_path: Path) -> None:
    s, result = asyncio.run(against(tmp_path, None))
    entry = Result.of(s, "t", result.outcome, result.message, result, cause=result.cause).as_json()
    assert entry["cause"] == "timeout"
    assert unanswered(entry)
    assert "did not answer within 0.5 s" in explain(entry, 0.5, None)
    # the same message with another cause is explained by the cause, not by its words
    reworded = {**entry, "cause": Cause.CLOSED.value}
    assert not unanswered(reworded)
    assert "closed the connection" in explain(reworded, 0.5, None)
    failure = Failure.of(entry)
    assert failure.expected == ["250"] and failure.actual.startswith("no complete reply")
    assert "Step 2 (" in format_failure({**entry, "reproduce": "pytest x"})


def test_transient_cause_is_said_on_the_terminal(tmp_path: Path) -> None:
    s = scenario(tmp_path)
    entry = Result.of(s, "t", Outcome.INFO, "the server ended the session with 421", cause=Cause.TRANSIENT).as_json()
    assert "(the server is unavailable for now (421/454): nothing to judge)" in format_failure(entry)
