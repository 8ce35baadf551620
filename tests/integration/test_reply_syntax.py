"""The reply-syntax scenarios (§4.2.1) fail servers that break them: mixed codes, bare LF, no SP after a code."""

from __future__ import annotations

from tests.servers.scripted import ScriptedServer, Servers, Session
from tests.support import REPO, run_suite

FILES = [str(REPO / "scenarios" / "rfc5321" / "4.2.1-reply-syntax.yaml"),
         str(REPO / "scenarios" / "rfc5321" / "4.2.1-sp-after-code.yaml")]
IDS = ["rfc5321-4.2.1-multiline-same-code", "rfc5321-4.2.1-help-reply-syntax", "rfc5321-4.2.1-sp-after-code"]


class _Replies(Session):
    """EHLO, HELP, NOOP, RSET and MAIL with switchable reply-syntax faults."""

    def lines(self, *lines: str) -> None:
        end = "\n" if "bare-lf" in self.server.faults else "\r\n"
        if "bare-code" in self.server.faults:
            lines = tuple(line[:3] if line[4:] == "" or line.endswith(" ok") else line for line in lines)
        self.sock.sendall("".join(line + end for line in lines).encode())

    def cmd_EHLO(self, arg: str) -> None:
        second = "251" if "mixed-codes" in self.server.faults else "250"
        self.lines("250-scripted.example.test", f"{second}-PIPELINING", "250 HELP")

    def cmd_HELP(self, arg: str) -> None:
        second = "215" if "mixed-codes" in self.server.faults else "214"
        self.lines("214-Commands:", f"{second}-EHLO HELO MAIL RCPT DATA", "214 End of HELP")

    def cmd_NOOP(self, arg: str) -> None:
        self.lines("250 ok")

    def cmd_RSET(self, arg: str) -> None:
        self.lines("250 ok")

    def cmd_MAIL(self, arg: str) -> None:
        self.lines("250 ok")


def test_reply_syntax_scenarios_catch_each_fault() -> None:
    with Servers() as servers:
        targets = {name: servers.start(ScriptedServer(_Replies, faults)).address for name, faults in {
            "good": (), "mixed": ("mixed-codes",), "lf": ("bare-lf",), "bare": ("bare-code",)}.items()}
        args = [a for label, address in targets.items() for a in ("--smtp-target", f"{label}={address}")]
        run = run_suite(*args, paths=FILES)
    assert run.document is not None, run.stdout[-3000:]
    assert run.outcomes("good") == dict.fromkeys(IDS, "pass")
    assert run.outcomes("mixed") == {IDS[0]: "fail", IDS[1]: "fail", IDS[2]: "pass"}
    assert "mixes codes 250 and 251" in run.result(IDS[0], "mixed")["message"]
    assert run.outcomes("lf") == {IDS[0]: "fail", IDS[1]: "fail", IDS[2]: "pass"}
    assert "bare LF" in run.result(IDS[0], "lf")["message"]
    assert run.outcomes("bare") == {IDS[0]: "pass", IDS[1]: "pass", IDS[2]: "non-strict"}


# ----- concurrent sessions (§4.5.4.2) ------------------------------------------------------------------
CONCURRENT = [str(REPO / "scenarios" / "rfc5321" / "4.5.4.2-concurrent-sessions.yaml")]


class _Serial(ScriptedServer):
    """Serves one connection at a time, as a naive student server does."""

    def process_request(self, request, client_address):  # type: ignore[no-untyped-def]
        self.finish_request(request, client_address)
        self.shutdown_request(request)


class _Transactions(_Replies):
    def cmd_EHLO(self, arg: str) -> None:
        self.lines("250-scripted.example.test", "250 HELP")

    def cmd_RCPT(self, arg: str) -> None:
        self.lines("250 ok")

    def cmd_DATA(self, arg: str) -> None:
        self.lines("354 go ahead")
        self.data_lines()
        self.lines("250 queued")


def test_concurrent_session_scenarios() -> None:
    with Servers() as servers:
        good = servers.start(ScriptedServer(_Transactions)).address
        serial = servers.start(_Serial(_Transactions)).address
        # one dialogue at a time: the serial server must greet each scenario's first connection (a greeting
        # later than our timeout is no verdict, RFC 5321 §4.5.3.2.1), only the second session stays unserved
        run = run_suite("--smtp-target", f"good={good}", "--smtp-target", f"serial={serial}",
                        "--smtp-timeout", "2", "--smtp-concurrency", "1", paths=CONCURRENT)
    assert run.document is not None, run.stdout[-3000:]
    ids = ["rfc5321-4.5.4.2-second-session-while-first-open", "rfc5321-4.5.4.2-two-transactions-at-once"]
    assert run.outcomes("good") == dict.fromkeys(ids, "pass")
    assert run.outcomes("serial") == dict.fromkeys(ids, "non-strict")
    assert "no complete reply" in run.result(ids[0], "serial")["message"]
