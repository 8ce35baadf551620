"""The dialogue engine: replays one scenario over one connection and judges every observation."""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .connection import (
    BUSY_RETRY_DELAYS,
    ConnectError,
    Connection,
    Event,
    Idle,
    Observation,
    ResetOnConnect,
    TLSConnectError,
    observed_cause,
)
from .escapes import escape_bytes
from .mailbox import Mailbox, MailboxError
from .model import (
    Action,
    Alternative,
    Cause,
    DeliveryCheck,
    Disconnect,
    EnhancedCodes,
    Expectation,
    Level,
    Outcome,
    Payload,
    Read,
    RequireKeywords,
    Scenario,
    SecondSession,
    Sleep,
    Source,
    StartTLS,
    TLSHandshake,
    Write,
)
from .reply import Reply
from .templates import cram_md5_response, regex_with_values, render
from .transcript import Transcript

if TYPE_CHECKING:  # a type only: the engine never imports the targets layer
    from .targets.base import Endpoint


@dataclass
class Settings:
    timeout: float = 10.0  # per reply
    budget: float = 120.0  # per scenario unless the scenario sets its own timeout
    deadline: float | None = None  # seconds left of the target's time limit: caps every budget
    delivery_timeout: float = 15.0  # how long stored mail may take to appear
    tls_context: Callable[[], ssl.SSLContext] | None = None
    idle: Idle | None = None  # lends the runner's concurrency slot out while the dialogue only waits
    busy: Callable[[], None] | None = None  # told when the server refused a connection as too many


@dataclass
class Decisive:
    index: int
    source: Source
    expected: list[str]
    actual: str

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "line": self.source.line, "file": self.source.file,
                "yaml": self.source.text, "expected": self.expected, "actual": self.actual}


@dataclass
class DialogueResult:
    outcome: Outcome
    message: str
    duration_s: float
    transcript: Transcript
    branch: list[str] = field(default_factory=list)
    decisive: Decisive | None = None
    codes: list[int | None] = field(default_factory=list)
    decisive_code: int | None = None
    connection: str = "open"
    findings: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    cause: str | None = None


class _Stop(Exception):
    """Ends the dialogue early; the verdict is already recorded."""


MAX_FINDINGS = 20  # distinct findings kept per dialogue: a hostile server cannot grow a result with them
ENHANCED_AT_START = re.compile(rb"^([245])\.\d{1,3}\.\d{1,3}(?= |$)")


def _code_matches(pattern: str, code: int) -> bool:
    text = str(code)
    return len(pattern) == 3 and all(p in ("x", c) for p, c in zip(pattern, text, strict=True))


def _enhanced_matches(pattern: str, actual: str | None) -> bool:
    if actual is None:
        return False
    want, got = pattern.split("."), actual.split(".")
    return len(got) == 3 and all(w in ("x", g) for w, g in zip(want, got, strict=True))


def matches(alt: Alternative, obs: Observation, values: dict[str, str] | None = None) -> bool:
    if isinstance(obs, Event):
        if alt.close:
            return obs.kind in ("closed", "reset") if alt.close == "any" else obs.kind == {
                "clean": "closed", "reset": "reset"}[alt.close]
        return alt.silence and obs.kind == "timeout" and not obs.partial
    if alt.close or alt.silence or obs.code is None or obs.truncated:
        return False  # an endless or flooding reply is not a reply, whatever its first line says
    if alt.codes and not any(_code_matches(p, obs.code) for p in alt.codes):
        return False
    if alt.enhanced and not _enhanced_matches(alt.enhanced, obs.enhanced):
        return False
    if alt.wellformed and obs.findings:
        return False
    if alt.wire and not re.search(alt.wire, obs.raw.decode("latin-1")):
        return False
    # {variables} in the pattern stand for their literal values ({rcpt}, {sender} …); {4} stays a quantifier
    return not (alt.text and not re.search(regex_with_values(alt.text, values or {}), obs.text))


def describe(obs: Observation) -> str:
    if isinstance(obs, Event):
        return obs.summary()
    if obs.code is None or obs.truncated:
        why = f" ({obs.findings[-1]})" if obs.truncated and obs.findings else ""
        return f"malformed reply '{obs.summary()}'{why}"
    if obs.findings:
        return f"{obs.summary()} [{'; '.join(obs.findings)}]"
    return obs.summary()


class Dialogue:
    def __init__(self, scenario: Scenario, endpoint: Endpoint, values: dict[str, str], settings: Settings,
                 level: Level | None = None, mailbox: Mailbox | None = None) -> None:
        self.scenario = scenario
        self.endpoint = endpoint
        self.token = f"smtpc-{uuid.uuid4().hex[:20]}"
        self.values = {**values, "token": self.token}
        self.mailbox = mailbox
        self.settings = settings
        self.level = level or scenario.level
        self.transcript = Transcript()
        self.conn = Connection(self.transcript, settings.idle)
        self.outcome = Outcome.PASS
        self.message = ""
        self.cause: str | None = None
        self.branch: list[str] = []
        self.decisive: Decisive | None = None
        self.decisive_code: int | None = None
        self.last_code: int | None = None
        self.last_text = ""  # for challenge-response AUTH
        self.enhanced_from: EnhancedCodes | None = None
        self.codes: list[int | None] = []
        self.findings: list[str] = []
        self.keywords: list[str] = []
        self.step_index = 0

    async def run(self) -> DialogueResult:
        started = time.monotonic()
        # a slow but correct server (2 s a reply, 100 recipients) must not run out of budget: it grows with the
        # replies the scenario reads (RFC 5321 §4.5.3.2 allows minutes for each)
        budget = self.scenario.timeout or max(self.settings.budget, SECONDS_PER_REPLY * _replies(self.scenario.actions))
        if self.settings.deadline is not None:
            budget = min(budget, self.settings.deadline)
        try:
            await asyncio.wait_for(self._run(), budget)
        except (ResetOnConnect, TLSConnectError) as exc:  # reachable, but it dropped us: its own doing
            self._grade(self.level.miss_outcome, str(exc),
                        cause=Cause.TLS if isinstance(exc, TLSConnectError) else Cause.RESET)
        except ConnectError as exc:
            self.outcome, self.message, self.cause = Outcome.ERROR, str(exc), Cause.REFUSED
        except TimeoutError:
            self._grade(self.level.miss_outcome, f"scenario did not finish within {budget:g} s (server too slow)",
                        cause=Cause.SCENARIO_TIMEOUT)
        finally:
            await self.conn.close()
        if self.outcome is Outcome.PASS and self.level is Level.INFO:
            self.outcome = Outcome.INFO
            self.message = "; ".join(self.branch) or "behaviour recorded"
        if self.outcome is Outcome.PASS and not self.message:
            self.message = "all replies as required"
        connection = self.conn.ended or ("timeout" if self.conn.timed_out else "open")
        return DialogueResult(
            outcome=self.outcome, message=self.message, duration_s=round(time.monotonic() - started, 4),
            transcript=self.transcript, branch=self.branch, decisive=self.decisive, codes=self.codes,
            decisive_code=self.decisive_code if self.decisive else self.last_code, connection=connection,
            findings=self.findings, keywords=self.keywords, cause=self.cause,
        )

    async def _run(self) -> None:
        ep = self.endpoint
        tls = self._tls_context() if ep.implicit_tls else None
        await self.conn.open(ep.host, ep.port, self.settings.timeout, tls, ep.server_hostname)
        with contextlib.suppress(_Stop):
            await self._play(self.scenario.actions)

    async def _play(self, actions: tuple[Action, ...], base: int = 0) -> None:
        for index, action in enumerate(actions):
            self.step_index = base + index
            if isinstance(action, Write):
                await self._write(action)
            elif isinstance(action, Read):
                await self._expect(action.expect)
            elif isinstance(action, TLSHandshake):
                await self._tls(action)
            elif isinstance(action, StartTLS):
                await self._starttls(action)
            elif isinstance(action, Sleep):
                await self._wait(action.seconds)
            elif isinstance(action, RequireKeywords):
                self._require(action)
            elif isinstance(action, DeliveryCheck):
                await self._delivered(action)
            elif isinstance(action, EnhancedCodes):
                self.enhanced_from = action
            elif isinstance(action, Disconnect):
                self.transcript.event("client closed the connection")
                await self.conn.close()
            elif isinstance(action, SecondSession):
                await self._second_session(action)

    async def _second_session(self, action: SecondSession) -> None:
        """A second connection while the first stays open; its replies are judged like the first's."""
        first, keywords = self.conn, self.keywords
        self.conn = Connection(self.transcript, self.settings.idle)
        self.transcript.event("second connection (the first stays open)")
        ep = self.endpoint
        try:
            tls = self._tls_context() if ep.implicit_tls else None
            try:
                await self.conn.open(ep.host, ep.port, self.settings.timeout, tls, ep.server_hostname)
            except ConnectError as exc:
                # the server is reachable (the first connection proves it) but refused a second one
                self._grade(self.level.miss_outcome, f"a second connection failed: {exc}", action.source,
                            None, None, expected=["a second, concurrent session"], cause=Cause.REFUSED)
                raise _Stop from None
            await self._play(action.actions, self.step_index)
        finally:
            await self.conn.close()
            self.transcript.event("second connection closed; back on the first")
            self.conn, self.keywords = first, keywords

    # ----- actions -----------------------------------------------------------------------------
    async def _write(self, action: Write) -> None:
        data = b"".join(self._payload_bytes(p) for p in action.payloads)
        await self.conn.send(data, self.settings.timeout, action.chunk_size, action.delay)
        for expect in action.expects:
            await self._expect(expect)

    def _payload_bytes(self, payload: Payload) -> bytes:
        values = self.values if not payload.index else {**self.values, "i": str(payload.index)}
        if "cram_md5" in payload.template.variables:
            values = {**values, "cram_md5": cram_md5_response(values.get("user", ""), values.get("password", ""),
                                                              self.last_text)}
        body = render(payload.template, values)
        if payload.kind == "line":
            return body + b"\r\n"
        if payload.kind == "raw":
            return body
        if payload.kind == "bdat":
            size = len(body) if payload.size is None else payload.size
            return f"BDAT {size}{' LAST' if payload.last else ''}\r\n".encode() + body
        return dot_stuff(body)

    async def _wait(self, seconds: float) -> None:
        """A pause that does not hold a concurrency slot others could use."""
        async with self.settings.idle() if self.settings.idle else contextlib.nullcontext():
            await asyncio.sleep(seconds)

    async def _next_past_busy(self, timeout: float) -> Observation:
        """The next observation; a "421 too many connections" at connect is waited out and reconnected."""
        obs = await self.conn.next(timeout)
        for delay in BUSY_RETRY_DELAYS:
            if not self.conn.busy_at_connect(obs):
                break
            if self.settings.busy is not None:
                self.settings.busy()  # fewer connections at once to this server from now on
            self.transcript.event(f"421 before anything was sent: the server is busy; reconnecting in {delay:g} s")
            await self.conn.close()
            await self._wait(delay)
            self.conn = Connection(self.transcript, self.settings.idle)
            ep = self.endpoint
            await self.conn.open(ep.host, ep.port, self.settings.timeout,
                                 self._tls_context() if ep.implicit_tls else None, ep.server_hostname)
            obs = await self.conn.next(timeout)
        return obs

    async def _expect(self, expect: Expectation) -> None:
        timeout = expect.timeout or self.settings.timeout
        obs = await self._next_past_busy(timeout)
        if isinstance(obs, Reply):
            self.codes.append(obs.code)
            self.last_code = obs.code
            self.last_text = obs.text
            for finding in obs.findings:
                if finding not in self.findings and len(self.findings) < MAX_FINDINGS:
                    self.findings.append(finding)
            if expect.captures_ehlo and obs.code == 250:
                self.keywords = obs.keywords()
        if self.enhanced_from is not None and isinstance(obs, Reply):
            self._check_enhanced(expect, obs)
        for alt in expect.alternatives:
            if matches(alt, obs, self.values):
                if alt.note:
                    self.branch.append(alt.note)
                if alt.outcome is not Outcome.PASS:
                    self._grade(alt.outcome, _verdict_text(expect, obs, alt.note), expect.source, expect, obs)
                if alt.stop or (isinstance(obs, Reply) and obs.truncated):
                    raise _Stop
                return
        if isinstance(obs, Reply) and obs.code == 421:
            # §3.8: a server may close with 421 at any time; that is not a violation of this requirement.
            self._grade(Outcome.INFO, "the server ended the session with 421 before the requirement could be "
                        f"checked (RFC 5321 §3.8 allows 421 at any time): {obs.summary()}", expect.source,
                        expect, obs, cause=Cause.TRANSIENT)
            raise _Stop
        self._grade(self.level.miss_outcome, _verdict_text(expect, obs), expect.source, expect, obs)
        raise _Stop

    async def _starttls(self, action: StartTLS) -> None:
        offered = any(k.split()[0] == "STARTTLS" for k in self.keywords if k.strip())
        if not offered:
            if action.mode == "required":
                self._grade(Outcome.UNSUPPORTED, "the server did not advertise STARTTLS in this session",
                            action.source, None, None, expected=["STARTTLS"], cause=Cause.UNSUPPORTED_EXTENSION)
                raise _Stop
            self.transcript.event("STARTTLS not offered: the dialogue goes on in plaintext")
            return
        timeout = action.timeout or self.settings.timeout
        await self.conn.send(b"STARTTLS\r\n", self.settings.timeout)
        reply = await self.conn.next(timeout)
        if isinstance(reply, Reply):
            self.codes.append(reply.code)
            self.last_code = reply.code
        if isinstance(reply, Reply) and reply.code == 454:  # RFC 3207 §4: TLS not available for now
            self._grade(Outcome.INFO, "TLS temporarily unavailable (454, RFC 3207 §4): nothing to check",
                        action.source, None, reply, cause=Cause.TRANSIENT)
            raise _Stop
        if not (isinstance(reply, Reply) and reply.code == 220 and not reply.truncated):
            self._grade(self.level.miss_outcome, f"Expected: 220 to STARTTLS / Actual: {describe(reply)}",
                        action.source, None, reply, expected=["220"])
            raise _Stop
        await self._tls(TLSHandshake(action.source))
        await self.conn.send(f"EHLO {self.values.get('client', 'client.example.net')}\r\n".encode(),
                             self.settings.timeout)
        ehlo = await self.conn.next(timeout)
        if isinstance(ehlo, Reply) and ehlo.code == 250 and not ehlo.truncated:
            self.codes.append(ehlo.code)
            self.keywords = ehlo.keywords()
            return
        self._grade(self.level.miss_outcome, f"Expected: 250 to EHLO after TLS / Actual: {describe(ehlo)}",
                    action.source, None, ehlo, expected=["250"])
        raise _Stop

    def _check_enhanced(self, expect: Expectation, obs: Reply) -> None:
        """RFC 2034 §4: every reply but the greeting and those to HELO/EHLO carries a matching x.y.z."""
        if obs.code is None or obs.code // 100 not in (2, 4, 5) or expect.command in ("EHLO", "HELO"):
            return
        for line, text in zip(obs.lines, obs.texts, strict=True):
            match = ENHANCED_AT_START.match(text)
            if match is None or int(match.group(1)) != obs.code // 100:
                problem = "no enhanced status code" if match is None else f"enhanced code {match.group(0).decode()}"
                self._grade(self.level.miss_outcome,
                            f"Expected: an enhanced status code {obs.code // 100}.x.x on every line (RFC 2034) / "
                            f"Actual: {problem} in '{escape_bytes(line[:120])}'", expect.source, expect, obs,
                            expected=[f"{obs.code // 100}.x.x on every reply line"], cause=Cause.REPLY_MISMATCH)
                raise _Stop

    async def _tls(self, action: TLSHandshake) -> None:
        leftover = self.conn.buffered()
        if leftover:
            self.findings.append(f"server sent {len(leftover)} octets after its 220 to STARTTLS, "
                                 "before the TLS handshake (RFC 3207 §4.2)")
        error = await self.conn.start_tls(self._tls_context(), self.endpoint.server_hostname, self.settings.timeout)
        self.keywords = []  # §4.2 of RFC 3207: everything learnt before TLS is forgotten
        if error:
            self._grade(self.level.miss_outcome, error, action.source, None, None, expected=["TLS handshake"],
                        cause=Cause.TLS)
            raise _Stop

    def _require(self, action: RequireKeywords) -> None:
        offered = {k.split()[0]: {p.upper() for p in k.split()[1:]} for k in self.keywords if k.strip()}

        def has(wanted: str) -> bool:  # "AUTH LOGIN": the keyword, with LOGIN among its parameters
            name, *params = wanted.split()
            return name in offered and set(params) <= offered[name]

        missing = [k for k in action.keywords if not has(k)]
        if missing:
            self._grade(Outcome.UNSUPPORTED, f"the server did not advertise {', '.join(missing)} in this session",
                        action.source, None, None, expected=list(action.keywords),
                        cause=Cause.UNSUPPORTED_EXTENSION)
            raise _Stop

    async def _delivered(self, check: DeliveryCheck) -> None:
        """Poll the target's mailbox for messages carrying this dialogue's token, then judge them."""
        if self.mailbox is None:
            self._grade(Outcome.UNSUPPORTED, "the target declares no mailbox to read delivered mail from",
                        check.source, None, None, expected=["a mailbox"], cause=Cause.MISSING_PARAMETER)
            raise _Stop
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (check.timeout or self.settings.delivery_timeout)
        token = self.token.encode()
        found: list[bytes] = []
        settled = False
        while True:
            try:
                found = await asyncio.to_thread(self.mailbox.messages_with, token)
            except MailboxError as exc:
                self._grade(Outcome.ERROR, f"cannot read the mailbox: {exc}", check.source, None, None,
                            expected=[self.mailbox.spec], cause=Cause.HARNESS)
                raise _Stop from None
            if len(found) >= max(check.count, 1):
                if settled or check.count == 0:
                    break
                settled = True  # a second message (smuggled?) may still be on its way: look once more
                await self._wait(0.5)
                continue
            if loop.time() >= deadline:
                break
            await self._wait(0.25)
        self.transcript.event(f"mailbox {self.mailbox.spec}: {len(found)} stored message(s) with the token")
        for raw in found[:3]:
            self.transcript.event("stored: " + escape_bytes(raw[:4096]) + (" …" if len(raw) > 4096 else ""))
        contains = [render(t, self.values).replace(b"\r\n", b"\n") for t in check.contains]
        lacks = [render(t, self.values).replace(b"\r\n", b"\n") for t in check.lacks]
        matches = [_regex(t, self.values) for t in check.matches]
        not_matches = [_regex(t, self.values) for t in check.not_matches]
        expected = [f"{check.count} stored message(s) with the token"]
        expected += [f"containing '{escape_bytes(t)}'" for t in contains]
        expected += [f"not containing '{escape_bytes(t)}'" for t in lacks]
        expected += [f"with header {h}" for h in check.headers]
        expected += [f"matching /{m.pattern.decode(errors='replace')}/" for m in matches]
        expected += [f"not matching /{m.pattern.decode(errors='replace')}/" for m in not_matches]
        problem = _judge_stored(found, check.count, contains, lacks, check.headers) or _judge_patterns(
            found, matches, not_matches)
        if problem:
            self._grade(self.level.miss_outcome, f"Expected: {'; '.join(expected)} / Actual: {problem}",
                        check.source, None, None, expected=expected, actual=problem, cause=Cause.NOT_DELIVERED)
            raise _Stop

    def _tls_context(self) -> ssl.SSLContext:
        if self.settings.tls_context is None:
            from .connection import make_tls_context

            return make_tls_context(verify=False)
        return self.settings.tls_context()

    # ----- verdicts ----------------------------------------------------------------------------
    def _grade(self, outcome: Outcome, message: str, source: Source | None = None,
               expect: Expectation | None = None, obs: Observation | None = None,
               expected: list[str] | None = None, actual: str | None = None, cause: str | None = None) -> None:
        """Keep the worst outcome; the first step that produced it is the decisive one. Without a `cause`, the
        observation names it (timeout, closed, reset, malformed, reply-mismatch)."""
        if outcome.rank <= self.outcome.rank:
            return
        self.outcome = outcome
        self.message = message
        self.cause = cause or (observed_cause(obs) if obs is not None else None)
        if source is not None:
            self.decisive = Decisive(
                index=self.step_index, source=source,
                expected=expected if expected is not None else (expect.describe() if expect else []),
                actual=actual or (describe(obs) if obs is not None else message),
            )
            self.decisive_code = obs.code if isinstance(obs, Reply) else None


SECONDS_PER_REPLY = 3.0


def _replies(actions: tuple[Action, ...]) -> int:
    """How many replies a scenario reads (second sessions included)."""
    count = 0
    for action in actions:
        if isinstance(action, Write):
            count += len(action.expects)
        elif isinstance(action, Read | StartTLS):
            count += 1 if isinstance(action, Read) else 3
        elif isinstance(action, SecondSession):
            count += _replies(action.actions)
    return count


def _verdict_text(expect: Expectation, obs: Observation, note: str | None = None) -> str:
    wanted = [a.describe() for a in expect.alternatives if a.outcome is Outcome.PASS] or expect.describe()
    head = "Expected: " + (wanted[0] if len(wanted) == 1 else "one of " + ", ".join(wanted))
    text = f"{head} / Actual: {describe(obs)}"
    return f"{text} ({note})" if note else text


def _judge_stored(found: list[bytes], count: int, contains: list[bytes], lacks: list[bytes],
                  headers: tuple[str, ...]) -> str | None:
    """What is wrong with the stored messages, or None. Line ends are compared as LF."""
    if len(found) != count:
        return f"{len(found)} stored message(s) with the token"
    for raw in found:
        text = raw.replace(b"\r\n", b"\n")
        head = text.split(b"\n\n", 1)[0].lower()
        for wanted in contains:
            if wanted not in text:
                return f"a stored message lacks '{escape_bytes(wanted)}'"
        for unwanted in lacks:
            if unwanted in text:
                return f"a stored message contains '{escape_bytes(unwanted)}'"
        for header in headers:
            if not (head.startswith(header.lower().encode() + b":") or b"\n" + header.lower().encode() + b":" in head):
                return f"a stored message has no {header} header"
    return None


def _regex(pattern: str, values: dict[str, str]) -> re.Pattern[bytes]:
    """Variables are inserted as literal text, then the pattern is compiled (multi-line mode)."""
    return re.compile(regex_with_values(pattern, values).encode("utf-8"), re.MULTILINE)


def _judge_patterns(found: list[bytes], matches: list[re.Pattern[bytes]],
                    not_matches: list[re.Pattern[bytes]]) -> str | None:
    for raw in found:
        text = raw.replace(b"\r\n", b"\n")
        for pattern in matches:
            if not pattern.search(text):
                return f"a stored message does not match /{pattern.pattern.decode(errors='replace')}/"
        for pattern in not_matches:
            hit = pattern.search(text)
            if hit:
                return f"a stored message matches /{pattern.pattern.decode(errors='replace')}/: " \
                       f"'{escape_bytes(hit.group(0)[:200])}'"
    return None


def dot_stuff(body: bytes) -> bytes:
    """CRLF line ends, a leading '.' doubled (§4.5.2), then the <CRLF>.<CRLF> terminator."""
    text = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    lines = text.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return stuffed + b".\r\n"
