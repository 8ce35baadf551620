"""The dialogue engine: replays one scenario over one connection and judges every observation."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import ssl
import time
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
from .mailbox import Mailbox, MailboxError, Stored
from .model import (
    Action,
    Alternative,
    Authenticate,
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


# A write of megabytes (a message above a SIZE limit, or padded to one) holds several copies of them while it
# renders, dot-stuffs and sends: only this many such writes run at once in a process, whatever the concurrency.
# Only the write is gated: the rest of the dialogue (a 15 s wait proving the message was not stored) runs free.
BIG_PAYLOAD = 1024 * 1024
BIG_AT_ONCE = 1


# how often a mailbox is read while a delivery is awaited (seconds): 0.25, 0.375, … up to 1
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.25, 1.5, 1.0
# a check that no message was stored waits out its whole window anyway: it looks less often (a stored copy
# is still seen, only later), since each look lists the whole mailbox
POLL_MAX_ABSENT = 4.0
PROBE_CAP = 50_000_000  # the default --probe-cap: 50 MB (a 50 MiB SIZE, Exim's and maildev's, is above it)
_OCTETS = re.compile(r"^\s*(\d+)\s*(?:([KMG])(I)?B?)?\s*$", re.IGNORECASE)


def parse_octets(text: str) -> int:
    """`50000000`, `50M`/`50MB` (powers of 1000), `50MiB` (powers of 1024), `512K`, `1G` → octets; ValueError
    otherwise."""
    match = _OCTETS.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 50000000, 50M, 50MiB, 1G)")
    power = " KMG".index((match.group(2) or " ").upper())
    return int(match.group(1)) * (1024 if match.group(3) else 1000) ** power


@dataclass
class Settings:
    timeout: float = 10.0  # per reply
    budget: float = 120.0  # per scenario unless the scenario sets its own timeout
    deadline: float | None = None  # seconds left of the target's time limit: caps every budget
    delivery_timeout: float = 15.0  # how long stored mail may take to appear
    probe_cap: int = PROBE_CAP  # octets: a `pad_to` above this is INFO "limit too large to probe"
    tls_context: Callable[[], ssl.SSLContext] | None = None
    idle: Idle | None = None  # lends the runner's concurrency slot out while the dialogue only waits
    busy: Callable[[], None] | None = None  # told when the server refused a connection as too many
    big: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None  # held around a big write


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
ENHANCED_AT_START = re.compile(rb"^([245])\.\d{1,3}\.\d{1,3}(?= )")  # RFC 2034: "always followed by one or more spaces"


def _code_matches(pattern: str, code: int) -> bool:
    text = str(code)
    return len(pattern) == 3 and all(p in ("x", c) for p, c in zip(pattern, text, strict=True))


@functools.lru_cache(maxsize=4096)  # a few hundred alternatives' codes and a few dozen codes, asked on every reply
def _codes_match(patterns: tuple[str, ...], code: int) -> bool:
    return any(_code_matches(p, code) for p in patterns)


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
    if alt.codes and not _codes_match(alt.codes, obs.code):
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
                 level: Level | None = None, mailbox: Mailbox | None = None, profile: str | None = None) -> None:
        self.scenario = scenario
        self.endpoint = endpoint
        self.token = f"smtpc-{os.urandom(10).hex()}"  # 20 random hex digits (mailbox.TOKEN)
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
        self.last_reply: Reply | None = None  # its text answers a challenge-response AUTH
        self.enhanced_from: EnhancedCodes | None = None
        self.codes: list[int | None] = []
        self.findings: list[str] = []
        self.keywords: list[str] = []
        self.step_index = 0
        self.profile = profile  # the target's server profile (C3): picks an alternative's outcome_for
        self.cause: str | None = None
        self.waiting: _Wait | None = None  # the reply being waited for (to judge a timeout against the RFC's)
        self.policy_reply: Reply | None = None  # the last reply, when it was a policy refusal (421, 530 …)
        self.sent_any = False
        self.replied_in_write = False  # a pipelined write already drew a reply: the server is reading it
        self.session_at: int | None = None  # index of the session step being played, if any
        self.accepted: set[tuple[str, int]] = set()  # steps (file, line) the server accepted at least once
        self.writing: Source | None = None  # the write step being built (verdicts while building its bytes)
        self.sent_messages: list[bytes] = []  # the messages sent (message: or BDAT chunks), CRLF line ends
        self.bdat_parts: list[bytes] = []  # the BDAT chunks of the transaction in progress
        self.progress_note = ""  # what the dialogue waits for now, in words (for progress lines)

    async def run(self) -> DialogueResult:
        started = time.monotonic()
        # a slow but correct server (2 s a reply, 100 recipients) must not run out of budget: it grows with the
        # replies the scenario reads (RFC 5321 §4.5.3.2 allows minutes for each)
        budget = self.scenario.timeout or max(self.settings.budget, SECONDS_PER_REPLY * _replies(self.scenario.actions))
        if self.settings.deadline is not None:
            budget = min(budget, self.settings.deadline)
        try:
            async with asyncio.timeout(budget):  # not wait_for: the dialogue runs in its runner task
                await self._run()
        except (ResetOnConnect, TLSConnectError) as exc:  # reachable, but it dropped us: its own doing
            self._grade(self.level.miss_outcome, str(exc),
                        cause=Cause.TLS if isinstance(exc, TLSConnectError) else Cause.RESET)
        except ConnectError as exc:
            self.outcome, self.message, self.cause = Outcome.ERROR, str(exc), Cause.REFUSED
        except TimeoutError:
            waiting = self.waiting
            rfc = _rfc_timeout(waiting.what) if waiting else None
            if waiting is not None and rfc is not None and time.monotonic() - waiting.since < rfc[1] * 60:
                # finding 13: our budget ran out before the RFC's own timeout for this reply: no verdict
                self._grade(Outcome.INFO, f"the server did not answer within {time.monotonic() - waiting.since:.0f} s "
                            f"(the scenario's budget of {budget:g} s ran out); RFC 5321 §{rfc[0]} allows it "
                            f"{rfc[1]} minutes", waiting.source, None, None, cause=Cause.TIMEOUT,
                            expected=waiting.expected, actual="no complete reply before the scenario's budget")
            else:
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
            findings=self.findings, keywords=self.keywords,
            cause=self.cause if self.outcome is not Outcome.PASS else None,
        )

    @property
    def last_text(self) -> str:
        return self.last_reply.text if self.last_reply is not None else ""

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
            elif isinstance(action, Authenticate):
                await self._authenticate(action)
            elif isinstance(action, Sleep):
                self.progress_note = f"pausing {action.seconds:g} s as the scenario says"
                await self._wait(action.seconds)
                self.progress_note = ""
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
        first, keywords, sent_any = self.conn, self.keywords, self.sent_any
        self.session_at = self.step_index  # setup or checked: as the session step itself
        self.conn, self.sent_any = Connection(self.transcript, self.settings.idle), False
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
            self.conn, self.keywords, self.sent_any = first, keywords, sent_any
            self.session_at = None

    # ----- actions -----------------------------------------------------------------------------
    async def _write(self, action: Write) -> None:
        self.writing = action.source
        if action.octets > BIG_PAYLOAD and self.settings.big is not None:
            async with self.settings.big():
                await self._send(action)  # its copies of the bytes are gone when it returns
        else:
            await self._send(action)
        self.sent_any = True
        # what each reply answers, for messages and RFC timeouts (known when every payload draws one reply)
        paired = len(action.payloads) == len(action.expects)
        self.replied_in_write = False
        for n, expect in enumerate(action.expects):
            await self._expect(expect, _answers(expect, action.payloads[n]) if paired else expect.command)
            self.replied_in_write = True
        self.replied_in_write = False

    async def _send(self, action: Write) -> None:
        payloads = action.payloads
        data = self._payload_bytes(payloads[0]) if len(payloads) == 1 else \
            b"".join(self._payload_bytes(p) for p in payloads)
        await self.conn.send(data, self.settings.timeout, action.chunk_size, action.delay)

    def _payload_bytes(self, payload: Payload) -> bytes:
        variables = payload.template.variables
        values = self.values if not payload.index or "i" not in variables else {**self.values, "i": str(payload.index)}
        if "cram_md5" in variables:
            values = {**values, "cram_md5": cram_md5_response(values.get("user", ""), values.get("password", ""),
                                                              self.last_text)}
        body = render(payload.template, values)
        if payload.kind == "line":
            return body + b"\r\n"
        if payload.kind == "raw":
            return body
        if payload.kind == "bdat":
            self._sent_chunk(body, payload.last)
            size = len(body) if payload.size is None else payload.size
            return f"BDAT {size}{' LAST' if payload.last else ''}\r\n".encode() + body
        self.sent_messages.append(_header_block(body))
        if payload.pad_to is not None:
            return self._padded(payload, body)
        return dot_stuff(body)

    def _sent_chunk(self, body: bytes, last: bool) -> None:
        if sum(len(p) for p in self.bdat_parts) < SENT_HEAD_OCTETS:  # the header block is all sent_headers needs
            self.bdat_parts.append(body[:SENT_HEAD_OCTETS])
        if last:
            self.sent_messages.append(_header_block(b"".join(self.bdat_parts)))
            self.bdat_parts = []

    def _padded(self, payload: Payload, body: bytes) -> bytes:
        """The message grown to exactly pad_to octets; INFO above the probe cap, UNSUPPORTED when impossible."""
        assert payload.pad_to is not None
        octets = payload.pad_to.octets(self.values)
        source = self.writing or Source(self.scenario.file, self.scenario.line, self.scenario.line, "")
        if octets is None:
            name = payload.pad_to.variable
            self._grade(Outcome.UNSUPPORTED, f"pad_to {payload.pad_to.text}: {{{name}}} has no number "
                        f"(value {self.values.get(name or '', '')!r})", source, None, None,
                        expected=[f"a number in {{{name}}}"], cause="missing-parameter")
            raise _Stop
        if octets > self.settings.probe_cap:
            self._grade(Outcome.INFO, f"limit too large to probe ({octets} octets > {self.settings.probe_cap}; "
                        "raise --probe-cap to probe it)", source, None, None,
                        expected=[f"a message of at most {self.settings.probe_cap} octets"])
            raise _Stop
        data = padded_message(body, octets)
        if data is None:
            size = len(crlf_message(body))
            self._grade(Outcome.UNSUPPORTED, f"pad_to {payload.pad_to.text}: cannot make a message of {octets} "
                        f"octets, the message alone is {size}", source, None, None,
                        expected=[f"a message of {octets} octets"], cause="missing-parameter")
            raise _Stop
        self.transcript.event(f"message padded to {octets} octets (RFC 1870 count)")
        return data

    def _capture(self, expect: Expectation, obs: Observation) -> None:
        """`capture:`: group 1 (or the whole match) of each regex in the reply text becomes {NAME}."""
        text = obs.text if isinstance(obs, Reply) else ""
        for name, pattern in expect.captures:
            found = re.search(regex_with_values(pattern, self.values), text)
            value = None if found is None else (found.group(1) if found.re.groups else found.group(0))
            if value is None:
                self._grade(Outcome.UNSUPPORTED, f"capture {name}: /{pattern}/ found nothing in {describe(obs)}",
                            expect.source, expect, obs, expected=[f"a reply text matching /{pattern}/ ({name})"],
                            cause="missing-parameter")
                raise _Stop
            self.values[name] = value
            self.transcript.event(f"captured {name} = {value!r}")

    async def _wait(self, seconds: float) -> None:
        """A pause that does not hold a concurrency slot others could use."""
        async with self.settings.idle() if self.settings.idle else contextlib.nullcontext():
            await asyncio.sleep(seconds)

    async def _next_past_busy(self, timeout: float) -> Observation:
        """The next observation; a "421 too many connections" at connect is waited out and reconnected."""
        obs = await self.conn.next(timeout)
        if not self.conn.busy_at_connect(obs):  # every reply but a greeting of 421
            return obs
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

    async def _expect(self, expect: Expectation, what: str | None = None) -> None:
        timeout = expect.timeout or self.settings.timeout
        if what is None:
            what = expect.command or (None if self.sent_any else GREETING)
        self.waiting = _Wait(what, time.monotonic(), expect.source, expect)
        self.progress_note = _waiting_note(timeout)
        obs = await self._next_past_busy(timeout)
        self.waiting = None
        self.progress_note = ""
        policy_before, self.policy_reply = self.policy_reply, None
        if obs.__class__ is Reply:
            if obs.code in POLICY_CODES and _is_policy(obs):
                self.policy_reply = obs
            self.codes.append(obs.code)
            self.last_code = obs.code
            self.last_reply = obs  # its text is decoded only if an AUTH challenge needs it
            for finding in obs.findings:
                if finding not in self.findings and len(self.findings) < MAX_FINDINGS:
                    self.findings.append(finding)
            if expect.captures_ehlo and obs.code == 250:
                self.keywords = obs.keywords()
            if self.enhanced_from is not None:
                self._check_enhanced(expect, obs)
        for alt in expect.alternatives:
            if matches(alt, obs, self.values):
                if alt.note:
                    self.branch.append(alt.note)
                outcome = alt.outcome_under(self.profile)
                if outcome is Outcome.PASS and isinstance(obs, Reply) and obs.code and obs.code // 100 in (2, 3):
                    self.accepted.add(_place(expect.source))
                if outcome not in (Outcome.PASS, Outcome.INFO) and _by_wildcard(alt, obs) and self._excused(
                        expect, obs, what, timeout, policy_before):
                    raise _Stop  # a policy refusal caught only by a catch-all (5xx …) alternative: not judged
                if outcome is not Outcome.PASS:
                    self._grade(outcome, _verdict_text(expect, obs, alt.note), expect.source, expect, obs)
                if alt.stop or (isinstance(obs, Reply) and obs.truncated):
                    raise _Stop
                if expect.captures:
                    self._capture(expect, obs)
                return
        if self._excused(expect, obs, what, timeout, policy_before):
            raise _Stop
        if isinstance(obs, Event) and policy_before is not None and policy_before.code == 421:
            obs = policy_before  # the close that 421 announced
        if isinstance(obs, Reply) and obs.code == 421:
            # §3.8: a server may close with 421 at any time; that is not a violation of this requirement.
            self._grade(Outcome.INFO, "the server ended the session with 421 before the requirement could be "
                        f"checked (RFC 5321 §3.8 allows 421 at any time): {obs.summary()} ({self._where()})",
                        expect.source, expect, obs, cause=Cause.TRANSIENT)
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
        if isinstance(reply, Reply) and reply.code == 421:
            self._grade(Outcome.INFO, "the server ended the session with 421 before the requirement could be "
                        f"checked (RFC 5321 §3.8 allows 421 at any time): {reply.summary()} ({self._where()})",
                        action.source, None, reply, expected=["220"], cause="transient")
            raise _Stop
        if isinstance(reply, Reply) and _is_policy(reply) and self._setup:
            self._setup_refused("STARTTLS", reply, action.source, ["220"])
            raise _Stop
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

    # ----- setup versus the checked step (C2), policy refusals and RFC timeouts ---------------------
    @property
    def _setup(self) -> bool:
        """Before the scenario's checked step (docs/scenario-format.md, "Setup and the checked step")."""
        index = self.step_index if self.session_at is None else self.session_at
        return index < self.scenario.checked_from

    def _where(self) -> str:
        return f"{'setup' if self._setup else 'checked'} step {self.step_index + 1}"

    def _setup_refused(self, what: str | None, obs: Reply, source: Source, expected: list[str],
                       closed: bool = False) -> None:
        reply = obs.summary()
        if what == GREETING:
            how = f"the server greeted with {reply}"
        else:
            how = f"{what or 'the command'} was refused with {reply}"
        if closed:
            how += ", then the connection was closed"
        self._grade(Outcome.UNSUPPORTED, f"could not reach the state this requirement needs: {how} ({self._where()}; "
                    "a refusal the RFCs allow for policy or load, not a violation)", source, None, obs,
                    expected=expected, cause="setup-refused")

    def _excused(self, expect: Expectation, obs: Observation, what: str | None, waited: float,
                 policy_before: Reply | None) -> bool:
        """Grade an unexpected observation that is not a violation; True when it was (the dialogue stops)."""
        expected = expect.describe()
        if isinstance(obs, Event) and obs.kind == "timeout":
            rfc = _rfc_timeout(what)
            # Judged as before: silence after the server answered an earlier command of the same pipelined write
            # (it lost the rest, RFC 2920 §3.2), and a second session's missing greeting while the first is held
            # open (that is what concurrent-session scenarios check)
            lost = self.replied_in_write or (what == GREETING and self.session_at is not None)
            if rfc is not None and waited < rfc[1] * 60 and not lost:
                self._grade(Outcome.INFO, f"the server did not answer within {waited:g} s; RFC 5321 §{rfc[0]} allows "
                            f"it {rfc[1]} minutes ({self._where()}: the suite's timeout is shorter than the RFC's, "
                            "so this is no verdict)", expect.source, expect, obs, cause="timeout")
                return True
            return False
        if isinstance(obs, Event):  # closed or reset
            if policy_before is not None and policy_before.code == 421:
                return False  # 421 announced the close: graded as 421 below
            if policy_before is not None and self._setup:
                self._setup_refused(what, policy_before, expect.source, expected, closed=True)
                return True
            return False
        if not _is_policy(obs) or obs.code == 421:  # 421 keeps its own INFO (§3.8), graded by the caller
            return False
        if obs.code == 530 and what in NOT_530:
            return False  # RFC 4954 §6 and RFC 3207 §4 both keep EHLO, NOOP and QUIT free of 530
        if self._setup:
            self._setup_refused(what, obs, expect.source, expected)
            return True
        accepting = _accepts(expect)
        # a step the server accepted before (the 101st of 1001 repeated RCPTs) could be accepted: judged
        if obs.code in TRANSIENT and accepting and _place(expect.source) not in self.accepted:
            self._grade(Outcome.INFO, f"{what or 'the command'} got a transient refusal {obs.summary()} where "
                        f"acceptance was expected ({self._where()}; a 4yz says \"not now\", RFC 5321 §4.2.1 and "
                        "§4.3.2): nothing to judge", expect.source, expect, obs, cause="transient")
            return True
        # 530 asks for AUTH or TLS first, whatever the command (RFC 4954 §6, RFC 3207 §4). A 554 or 538 at the
        # checked step is judged: it can be the very refusal the requirement forbids (§4.5.3.1.8, RFC 4954 §6).
        if obs.code == 530 and not _names(expect, 530):  # where the author expects a 530, it is what is checked
            self._setup_refused(what, obs, expect.source, expected)
            return True
        return False

    async def _authenticate(self, action: Authenticate) -> None:
        """Setup for servers that want credentials: STARTTLS where offered, then AUTH, when --auth is given."""
        user, password = self.values.get("user"), self.values.get("password")
        if user is None or password is None:
            return  # no credentials: the session stays as it is (a server requiring AUTH refuses later)
        offered = {k.split()[0].upper(): [p.upper() for p in k.split()[1:]] for k in self.keywords if k.strip()}
        if "STARTTLS" in offered and not self.conn.tls:
            await self._starttls(StartTLS("if-offered", action.source, action.timeout))
            offered = {k.split()[0].upper(): [p.upper() for p in k.split()[1:]] for k in self.keywords if k.strip()}
        mechanisms = offered.get("AUTH", [])
        if "PLAIN" in mechanisms:
            steps = [(f"AUTH PLAIN {self.values['auth_plain']}", (235,))]
        elif "LOGIN" in mechanisms:
            steps = [("AUTH LOGIN", (334,)), (self.values["auth_login_user"], (334,)),
                     (self.values["auth_login_password"], (235,))]
        else:
            self.transcript.event("credentials given, but the server offers no AUTH PLAIN or LOGIN here: not used")
            return
        timeout = action.timeout or self.settings.timeout
        for line, wanted in steps:
            await self.conn.send(line.encode() + b"\r\n", self.settings.timeout)
            reply = await self.conn.next(timeout)
            if isinstance(reply, Reply):
                self.codes.append(reply.code)
                self.last_code = reply.code
                if reply.code in wanted and not reply.truncated:
                    continue
                if _is_policy(reply):
                    self._setup_refused("AUTH", reply, action.source, ["235"])
                    raise _Stop
            self._grade(Outcome.ERROR, f"the credentials given for this target were not accepted: Expected: "
                        f"{'/'.join(map(str, wanted))} to AUTH / Actual: {describe(reply)} ({self._where()})",
                        action.source, None, reply, expected=["235"], cause="harness")
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
        self.progress_note = f"waiting up to {check.timeout or self.settings.delivery_timeout:g} s for delivery"
        token = self.token.encode()
        found: list[bytes] = []
        settled = False
        polls = 0
        rcpt = render(check.rcpt, self.values).decode("utf-8", "replace") if check.rcpt is not None else None
        while True:
            try:
                stored = await asyncio.to_thread(self.mailbox.stored_with, token) if self.mailbox.remote \
                    else self.mailbox.stored_with(token)
                found = [s.raw for s in stored] if rcpt is None else self._copies_for(rcpt, stored, check)
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
            # 0.25 s at first, then less often: a wait that proves a message was not stored lasts 15 s
            most = POLL_MAX_ABSENT if check.count == 0 else POLL_MAX
            await self._wait(min(POLL_FIRST * POLL_GROWTH ** polls, most, max(deadline - loop.time(), 0.0)))
            polls += 1
        self.transcript.event(f"mailbox {self.mailbox.spec}: {len(found)} stored message(s) with the token"
                              + (f" for {rcpt}" if rcpt is not None else ""))
        for raw in found[:3]:
            self.transcript.event("stored: " + escape_bytes(raw[:4096]) + (" …" if len(raw) > 4096 else ""))
        contains = [render(t, self.values).replace(b"\r\n", b"\n") for t in check.contains]
        lacks = [render(t, self.values).replace(b"\r\n", b"\n") for t in check.lacks]
        matches = [_regex(t, self.values) for t in check.matches]
        not_matches = [_regex(t, self.values) for t in check.not_matches]
        count = f"{check.count}-{check.count_max}" if check.count_max is not None else str(check.count)
        expected = [f"{count} stored message(s) with the token" + (f" for {rcpt}" if rcpt is not None else "")]
        expected += [f"containing '{escape_bytes(t)}'" for t in contains]
        expected += [f"not containing '{escape_bytes(t)}'" for t in lacks]
        expected += [f"with header {h}" for h in check.headers]
        expected += [f"matching /{m.pattern.decode(errors='replace')}/" for m in matches]
        expected += [f"not matching /{m.pattern.decode(errors='replace')}/" for m in not_matches]
        body = render(check.body, self.values).replace(b"\r\n", b"\n") if check.body is not None else None
        if body is not None:
            expected.append(f"with the body '{escape_bytes(body[:200])}{' …' if len(body) > 200 else ''}' "
                            "byte-exact")
        if check.sent_headers:
            expected.append("with the header fields sent, in order and unchanged, after the server's trace fields")
        problem = (_judge_count(found, check.count, check.count_max)
                   or _judge_stored(found, len(found), contains, lacks, check.headers)
                   or _judge_patterns(found, matches, not_matches)
                   or (_judge_body(found, body) if body is not None else None)
                   or (_judge_sent_headers(found, self.sent_messages) if check.sent_headers else None))
        if problem:
            self._grade(self.level.miss_outcome, f"Expected: {'; '.join(expected)} / Actual: {problem}",
                        check.source, None, None, expected=expected, actual=problem, cause=Cause.NOT_DELIVERED)
            raise _Stop

    def _copies_for(self, rcpt: str, stored: list[Stored], check: DeliveryCheck) -> list[bytes]:
        """The stored copies meant for rcpt: by the store's envelope, else by the message's own trace fields.
        A copy that says nothing of its recipients cannot be attributed: UNSUPPORTED, not a guess."""
        wanted = bare_address(rcpt)
        out = []
        for copy in stored:
            recipients = {bare_address(r) for r in copy.recipients} or stored_recipients(copy.raw)
            if not recipients:
                self._grade(Outcome.UNSUPPORTED, "the mailbox does not say which recipient a stored copy is for "
                            "(no Delivered-To, X-Original-To, Envelope-to, X-RcptTo or Received 'for' field, no "
                            "envelope from its API)", check.source, None, None,
                            expected=[f"stored copies attributable to {rcpt}"], cause="missing-parameter")
                raise _Stop
            if wanted in recipients:
                out.append(copy.raw)
        return out

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


GREETING = "the greeting"
# Replies the RFCs allow for policy or load (RFC 5321 §3.8, §4.3.2; RFC 4954 §6; RFC 3207 §4, §4.1)
POLICY_CODES = frozenset({421, 450, 451, 452, 454, 530, 538, 554})
TRANSIENT = frozenset({421, 450, 451, 452, 454})
NOT_530 = frozenset({"EHLO", "NOOP", "QUIT"})  # exempt from 530 under both RFC 4954 §6 and RFC 3207 §4
DATA_END = "the end of the message data"
# RFC 5321 §4.5.3.2: the least time a client must give the server for each reply (section, minutes)
RFC_TIMEOUTS = {GREETING: ("4.5.3.2.1", 5), "MAIL": ("4.5.3.2.2", 5), "RCPT": ("4.5.3.2.3", 5),
                "DATA": ("4.5.3.2.4", 2), DATA_END: ("4.5.3.2.6", 10)}


@dataclass(slots=True)
class _Wait:
    what: str | None
    since: float
    source: Source
    expect: Expectation

    @property
    def expected(self) -> list[str]:  # worded only when a timeout needs it, not for every reply awaited
        return self.expect.describe()


def _rfc_timeout(what: str | None) -> tuple[str, int] | None:
    return RFC_TIMEOUTS.get(what) if what else None


def _answers(expect: Expectation, payload: Payload) -> str | None:
    """What a reply answers: the command's verb, or the end of a DATA message."""
    if payload.kind == "message":
        return DATA_END
    if expect.command:
        return expect.command
    if payload.kind == "raw":  # a raw command line: its first word, when it looks like a verb
        head = b"".join(p for p in payload.template.parts if isinstance(p, bytes)).split(b"\r\n")[0].split()
        if head and head[0].isalpha() and len(head[0]) <= 10:
            return head[0].decode("ascii").upper()
    return None


def _accepts(expect: Expectation) -> bool:
    """A PASS alternative is a 2xx/3xx reply: the server could have accepted here, so "not now" is no verdict."""
    return any(a.outcome is Outcome.PASS and any(c[0] in "23" for c in a.codes) for a in expect.alternatives)


def _by_wildcard(alt: Alternative, obs: Observation) -> bool:
    """A 530 matched only a code pattern (5xx, 53x) or no code at all: the author did not name it."""
    return (isinstance(obs, Reply) and obs.code == 530 and str(obs.code) not in alt.codes
            and not alt.close and not alt.silence)


def _names(expect: Expectation, code: int) -> bool:
    return any(str(code) in alt.codes for alt in expect.alternatives)


@functools.lru_cache(maxsize=64)  # a handful of timeouts; the note is set before every reply
def _waiting_note(timeout: float) -> str:
    return f"waiting up to {timeout:g} s for a reply"


def _is_policy(obs: Reply) -> bool:
    """A refusal the RFCs allow for policy or load. 554 only as a security/policy refusal (RFC 3207 §4.1):
    with an X.7.X enhanced code (RFC 3463); a bare 554 is the ordinary "transaction failed"."""
    if obs.code is None or obs.truncated or obs.code not in POLICY_CODES:
        return False
    return obs.code != 554 or (obs.enhanced or "").startswith("5.7.")


def _place(source: Source) -> tuple[str, int]:
    return source.file, source.line


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


def _judge_count(found: list[bytes], count: int, count_max: int | None) -> str | None:
    top = count if count_max is None else count_max
    return None if count <= len(found) <= top else f"{len(found)} stored message(s) with the token"


RECIPIENT_FIELDS = (b"delivered-to", b"x-original-to", b"envelope-to", b"x-envelope-to", b"x-rcptto")
# `for <a@b>;` (one path, §4.4) or a list `for <a@b>, <c@d>;` as some servers write it
RECEIVED_FOR = re.compile(rb"\bfor\s+((?:<?[^\s<>;,]+@[^\s<>;,]+>?\s*,?\s*)+)(?:;|$)", re.IGNORECASE)
ADDRESS = re.compile(rb"[^\s<>;,]+@[^\s<>;,]+")


def header_fields(message: bytes) -> list[bytes]:
    """The header block's fields, each with its continuation lines, line ends as LF, exactly as stored."""
    text = message.replace(b"\r\n", b"\n")
    head = b"" if text.startswith(b"\n") else text.split(b"\n\n", 1)[0]
    fields: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\n" + line
        elif line:
            fields.append(line)
    return fields


def message_body(message: bytes) -> bytes:
    """What follows the header block and its empty line (line ends as LF); empty when there is none."""
    text = message.replace(b"\r\n", b"\n")
    if text.startswith(b"\n"):
        return text[1:]
    _, sep, body = text.partition(b"\n\n")
    return body if sep else b""


def bare_address(text: str) -> str:
    """`<User@Example.TEST>` → `user@example.test`: how copies are matched to recipients."""
    return text.strip().strip("<>").strip().lower()


def stored_recipients(message: bytes) -> set[str]:
    """Envelope recipients a stored copy names in its own trace fields (Delivered-To, X-Original-To,
    Envelope-to, X-RcptTo, `for <addr>` in Received)."""
    out: set[str] = set()
    for item in header_fields(message):
        name, _, value = item.partition(b":")
        name = name.strip().lower()
        unfolded = b" ".join(value.split())
        if name in RECIPIENT_FIELDS:
            out.update(bare_address(a.decode("utf-8", "replace")) for a in unfolded.split(b",") if a.strip())
        elif name == b"received":
            found = RECEIVED_FOR.search(unfolded)
            if found:
                out.update(bare_address(a.decode("utf-8", "replace")) for a in ADDRESS.findall(found.group(1)))
    return out


def byte_diff(expected: bytes, actual: bytes, context: int = 30) -> str | None:
    """Where two byte strings part: the first differing offset (line and column) and escaped context on either
    side, or None when they are equal."""
    if expected == actual:
        return None
    at = len(os.path.commonprefix([expected, actual]))
    line = expected[:at].count(b"\n") + 1
    column = at - (expected.rfind(b"\n", 0, at) + 1) + 1
    before = escape_bytes(expected[max(0, at - context) : at])
    lead = "…" if at > context else ""

    def after(data: bytes) -> str:
        if at >= len(data):
            return "(end)"
        tail = data[at : at + context]
        return f"'{escape_bytes(tail)}'" + ("…" if len(data) > at + context else "")

    return (f"first difference at offset {at} (line {line}, column {column}; expected {len(expected)} octets, "
            f"stored {len(actual)}): after {lead}'{before}' expected {after(expected)} but stored {after(actual)}")


def _judge_body(found: list[bytes], body: bytes) -> str | None:
    for raw in found:
        diff = byte_diff(body, message_body(raw))
        if diff:
            return f"the stored body differs: {diff}"
    return None


def _judge_sent_headers(found: list[bytes], sent: list[bytes]) -> str | None:
    """Each stored copy holds the header fields of a message this dialogue sent: together, in order, unchanged."""
    if not sent:
        return "this dialogue sent no message whose header fields could be compared"
    for raw in found:
        stored = header_fields(raw)
        problems = [_fields_problem(header_fields(message), stored) for message in sent]
        if all(problems):
            return problems[-1]
    return None


def _fields_problem(sent: list[bytes], stored: list[bytes]) -> str | None:
    n = len(sent)
    if not n or any(stored[i : i + n] == sent for i in range(len(stored) - n + 1)):
        return None
    for field_ in sent:
        if field_ not in stored:
            name = field_.split(b":", 1)[0].strip().lower()
            same = [f for f in stored if f.split(b":", 1)[0].strip().lower() == name]
            stored_as = f"; stored as '{escape_bytes(same[0][:200])}'" if same else "; no such field stored"
            return f"the header field '{escape_bytes(field_[:200])}' the client sent is missing or changed{stored_as}"
    return "the header fields the client sent are stored, but not together in the order sent: " + \
        " | ".join(escape_bytes(f[:80]) for f in stored)


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


def crlf_message(body: bytes) -> bytes:
    """The message as RFC 1870 counts it: CRLF line ends, the last line ended, no dot-stuffing, no final dot."""
    text = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return text if not text or text.endswith(b"\r\n") else text + b"\r\n"


SENT_HEAD_OCTETS = 256 * 1024  # of each sent message kept for sent_headers (its header block)


def _header_block(message: bytes) -> bytes:
    """The header block of a sent message (CRLF line ends) and its empty line, or its first octets."""
    head = message[:SENT_HEAD_OCTETS].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    end = head.find(b"\r\n\r\n")
    return head[: end + 4] if end >= 0 else head


# 500 octets: half the 1000-octet line limit (§4.5.3.1.6), so that no server's off-by-one line limit decides a
# SIZE verdict, and a tenth of the lines of 80-octet filler: servers that read DATA a line at a time (aiosmtpd:
# ~5 µs a line) spent most of a 30-target run's CPU on the 10 MB SIZE probes
FILLER_LINE = b"x" * 498 + b"\r\n"


def padded_message(body: bytes, octets: int) -> bytes | None:
    """The message dot-stuffed and terminated, with filler lines of x appended so that it counts exactly
    `octets` (RFC 1870: CRLF pairs included; dot-stuffing and the final dot line not counted); None when the
    message is already longer. Built once: stuffing applies to the author's lines only (filler needs none)."""
    size = len(crlf_message(body))
    missing = octets - size
    if missing < 0 or (missing == 1 and size == 0):
        return None
    stuffed = dot_stuff(body)[:-3]  # without the terminating ".\r\n"
    if missing == 1:  # no line is one octet long: the last line grows by one
        return stuffed[:-2] + b"x\r\n.\r\n"
    full, rest = divmod(missing, len(FILLER_LINE))
    if rest == 1:  # one filler line one octet longer
        return b"".join((stuffed, FILLER_LINE * (full - 1), b"x" * (len(FILLER_LINE) - 1) + b"\r\n.\r\n"))
    last = b"x" * (rest - 2) + b"\r\n" if rest else b""
    return b"".join((stuffed, FILLER_LINE * full, last, b".\r\n"))


def dot_stuff(body: bytes) -> bytes:
    """CRLF line ends, a leading '.' doubled (§4.5.2), then the <CRLF>.<CRLF> terminator."""
    text = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    lines = text.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return stuffed + b".\r\n"
