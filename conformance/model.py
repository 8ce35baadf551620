"""The scenario model: what a YAML scenario means, independent of YAML and of sockets."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NON_STRICT = "non-strict"
    INFO = "info"
    UNSUPPORTED = "unsupported"
    SKIPPED = "skipped"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Severity within one dialogue: the worst step decides the scenario."""
        return _RANK[self]


_RANK = {
    Outcome.PASS: 0,
    Outcome.INFO: 1,
    Outcome.NON_STRICT: 2,
    Outcome.UNSUPPORTED: 3,
    Outcome.SKIPPED: 3,
    Outcome.FAIL: 4,
    Outcome.ERROR: 5,
}

class Cause(StrEnum):
    """Why a verdict is what it is, in words a program can branch on (the `cause` of a results entry).

    Set where the engine decides (connection, dialogue, runner); readers branch on it, never on the
    message text, which is for people and may be reworded."""

    REFUSED = "refused"  # could not connect (or a second connection was refused)
    TIMEOUT = "timeout"  # no complete reply within the reply timeout
    SCENARIO_TIMEOUT = "scenario-timeout"  # the whole dialogue did not finish within its budget
    TIME_LIMIT = "time-limit"  # not run: the target's time limit was used up
    CLOSED = "closed"  # the server closed the connection
    RESET = "reset"  # the server reset the connection
    MALFORMED = "malformed"  # something that is not a valid (or complete) SMTP reply
    REPLY_MISMATCH = "reply-mismatch"  # a well-formed reply that is not what the step allows
    NOT_DELIVERED = "not-delivered"  # the mailbox does not hold what the delivered step expects
    SETUP_REFUSED = "setup-refused"  # the server refused a setup step before the checked one
    TRANSIENT = "transient"  # 421 / 454: the server is unavailable for now; nothing to judge
    UNSUPPORTED_EXTENSION = "unsupported-extension"  # a needed EHLO keyword is not advertised
    MISSING_PARAMETER = "missing-parameter"  # the target lacks a parameter the scenario needs
    TLS = "tls"  # a TLS handshake failed
    NO_GREETING = "no-greeting"  # no usable greeting: no scenario could run
    NOT_STARTED = "not-started"  # the target could not be started
    HARNESS = "harness"  # the suite itself could not do its part (mailbox unreadable, a target kind's bug)


# Outcomes an author may give an alternative; the others are the harness's to decide.
AUTHOR_OUTCOMES = ("pass", "fail", "non-strict", "info", "unsupported")


class Level(StrEnum):
    MUST = "MUST"
    MUST_NOT = "MUST NOT"
    SHOULD = "SHOULD"
    SHOULD_NOT = "SHOULD NOT"
    MAY = "MAY"
    INFO = "INFO"

    @property
    def miss_outcome(self) -> Outcome:
        """What it costs the server when no acceptable alternative matched."""
        if self in (Level.MUST, Level.MUST_NOT):
            return Outcome.FAIL
        if self in (Level.SHOULD, Level.SHOULD_NOT):
            return Outcome.NON_STRICT
        return Outcome.INFO


@dataclass(frozen=True)
class Source:
    """Where a step came from, for error messages and failure reports."""

    file: str
    line: int
    end_line: int
    text: str  # the step's YAML lines, verbatim


@dataclass(frozen=True)
class Var:
    """A `{name}`, `{repeat:TEXT:N}` or `{base64:TEMPLATE}` placeholder."""

    name: str
    args: tuple[str, ...] = ()
    inner: Template | None = None  # base64: the text (with its own variables) to encode


TemplatePart = bytes | Var


@dataclass(frozen=True)
class Template:
    """Scenario text with escapes already decoded and variables left for the target."""

    parts: tuple[TemplatePart, ...]
    source_text: str

    @functools.cached_property
    def variables(self) -> frozenset[str]:  # asked for each payload sent: worked out once
        names: set[str] = set()
        for part in self.parts:
            if isinstance(part, Var):
                names.add(part.name)
                if part.inner is not None:
                    names |= part.inner.variables
        return frozenset(names)


CODE_PATTERN = re.compile(r"^[2-5][0-9x][0-9x]$")
ENHANCED_PATTERN = re.compile(r"^[245x]\.(\d{1,3}|x)\.(\d{1,3}|x)$")


@dataclass(frozen=True)
class Alternative:
    """One acceptable (or explicitly graded) observation at a step."""

    codes: tuple[str, ...] = ()  # "250", "2xx", "55x"; empty with no close/silence = any reply
    enhanced: str | None = None  # "5.5.1", "5.x.x"
    text: str | None = None  # regex searched in the reply text
    close: str | None = None  # "clean", "reset" or "any": the server ends the connection instead
    silence: bool = False  # nothing at all arrives within the step timeout
    outcome: Outcome = Outcome.PASS
    note: str | None = None
    stop: bool = False  # end the dialogue here (e.g. the server refused service)
    wellformed: bool = False  # the reply must also be free of §4.2 syntax findings
    wire: str | None = None  # regex searched in the reply exactly as received (CR and LF included)
    outcome_for: tuple[tuple[str, Outcome], ...] = ()  # (profile, outcome): overrides `outcome` for that profile

    def outcome_under(self, profile: str | None) -> Outcome:
        """The outcome for a target of this profile (C3: `outcome_for: {catcher: info}`)."""
        if not self.outcome_for:  # nearly every alternative: asked on every reply
            return self.outcome
        return next((o for p, o in self.outcome_for if p == profile), self.outcome)

    def describe(self) -> str:
        if self.close:
            desc = {"clean": "connection closed", "reset": "connection reset"}.get(
                self.close, "connection closed or reset"
            )
        elif self.silence:
            desc = "no reply (silence)"
        else:
            desc = "/".join(self.codes) if self.codes else "any reply"
            if self.enhanced:
                desc += f" with enhanced code {self.enhanced}"
            if self.text:
                desc += f" with text matching /{self.text}/"
            if self.wellformed:
                desc += ", well-formed (§4.2)"
            if self.wire:
                desc += f" with bytes matching /{self.wire}/"
        if self.outcome is not Outcome.PASS:
            desc += f" [{self.outcome.value}]"
        return desc


@dataclass(frozen=True)
class Expectation:
    """What the next observation (a reply, a close, or silence) may be."""

    alternatives: tuple[Alternative, ...]
    source: Source
    timeout: float | None = None
    command: str | None = None  # verb of the command this answers (EHLO replies record keywords)
    captures: tuple[tuple[str, str], ...] = ()  # (name, regex): group 1 (or the match) of the reply text → {name}

    @property
    def captures_ehlo(self) -> bool:
        return self.command == "EHLO"

    def describe(self) -> list[str]:
        return [alt.describe() for alt in self.alternatives]


@dataclass(frozen=True)
class Payload:
    template: Template
    kind: str  # "line" (CRLF added), "raw" (verbatim), "message" (dot-stuffed, terminated), "bdat" (framed)
    index: int = 0  # the value of {i} within a repeat
    last: bool = False  # bdat: the LAST chunk
    size: int | None = None  # bdat: declare this size instead of the real one (to test mismatches)
    pad_to: PadTo | None = None  # message: filler body lines up to exactly this many octets (RFC 1870 count)


@dataclass(frozen=True)
class PadTo:
    """`pad_to: {size}+1`: a variable's value (or 0 without one) plus an offset, in octets."""

    variable: str | None
    offset: int = 0
    text: str = ""  # as written, for messages

    def octets(self, values: dict[str, str]) -> int | None:
        """The size asked for, or None when the variable has no integer value."""
        if self.variable is None:
            return self.offset
        value = values.get(self.variable, "").strip()
        return int(value) + self.offset if value.isdigit() else None


@dataclass(frozen=True)
class Write:
    """One socket write (maybe chunked), then the replies it should draw, in order."""

    payloads: tuple[Payload, ...]
    expects: tuple[Expectation, ...]
    source: Source
    chunk_size: int | None = None
    delay: float = 0.0

    @functools.cached_property
    def octets(self) -> int:
        """Octets this write comes to, roughly: its literal text and {repeat:TEXT:N} expanded (a message padded
        to a SIZE counts as the largest). Asked on every write of every target: worked out once."""
        total = 0
        for payload in self.payloads:
            if payload.pad_to is not None:
                return 2**31
            for part in payload.template.parts:
                if isinstance(part, bytes):
                    total += len(part)
                elif getattr(part, "name", "") == "repeat":
                    total += len(part.args[0]) * int(part.args[1])
        return total


@dataclass(frozen=True)
class Read:
    expect: Expectation


@dataclass(frozen=True)
class TLSHandshake:
    source: Source


@dataclass(frozen=True)
class StartTLS:
    """STARTTLS, 220, the handshake, EHLO again — always (`required`) or only where advertised (`if-offered`)."""

    mode: str  # "required" or "if-offered"
    source: Source
    timeout: float | None = None


@dataclass(frozen=True)
class Authenticate:
    """Where the target has credentials: STARTTLS if offered, then AUTH with them if offered (`if-configured`)."""

    mode: str  # "if-configured"
    source: Source
    timeout: float | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float
    source: Source


@dataclass(frozen=True)
class Disconnect:
    """The client closes the connection (e.g. to check that an unfinished transaction is not delivered)."""

    source: Source


@dataclass(frozen=True)
class EnhancedCodes:
    """From here on, replies must carry RFC 3463 enhanced codes of the reply's class (RFC 2034)."""

    source: Source


@dataclass(frozen=True)
class RequireKeywords:
    keywords: tuple[str, ...]
    source: Source


@dataclass(frozen=True)
class DeliveryCheck:
    """What the target stored for this dialogue's messages (found by the dialogue's unique {token})."""

    source: Source
    count: int = 1
    contains: tuple[Template, ...] = ()  # rendered per dialogue ({token}, {rcpt} …), line ends as LF
    lacks: tuple[Template, ...] = ()
    headers: tuple[str, ...] = ()
    timeout: float | None = None
    matches: tuple[str, ...] = ()  # regular expressions each stored message must match (LF line ends)
    not_matches: tuple[str, ...] = ()  # (a {variable} in them is replaced by its escaped value)
    count_max: int | None = None  # count given as a range "1-2": at most this many (None: exactly count)
    body: Template | None = None  # the stored body after the header block, byte-exact (line ends as LF)
    sent_headers: bool = False  # the client's header fields follow the server's trace fields, unchanged
    rcpt: Template | None = None  # judge only the copies stored for this recipient


@dataclass(frozen=True)
class SecondSession:
    """Steps played on a second connection opened while the first stays open (concurrent sessions)."""

    actions: tuple[Action, ...]
    source: Source


Action = (Write | Read | TLSHandshake | StartTLS | Authenticate | Sleep | RequireKeywords | DeliveryCheck
          | EnhancedCodes | Disconnect | SecondSession)


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    rfc: str
    section: str
    level: Level
    quote: str
    file: str
    line: int
    actions: tuple[Action, ...]
    tags: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()  # EHLO keywords the target must advertise
    needs: tuple[str, ...] = ()  # target parameters: "credentials", "mailbox"
    requirements: tuple[str, ...] = ()  # ids from the requirements inventory
    description: str = ""
    timeout: float | None = None
    variables: frozenset[str] = field(default_factory=frozenset)
    level_from: str = ""  # where the level comes from when the quote itself has no BCP 14 keyword
    # index into `actions` of the first action of the checked step (C2): the actions before it are setup
    checked_from: int = 0
    profiles: tuple[str, ...] = ()  # server profiles the scenario applies to (C3); empty = every profile
    stored: str | None = None  # "checked" / "unchecked": whether the stored form of its messages is judged


# Server profiles (C3): what kind of server a target is; unset judges only what holds for every profile.
PROFILES = ("mx", "submission", "relay", "catcher")


def rfc_order(rfc: str) -> tuple[int, int, str]:
    """The one order of RFCs everywhere: RFC 5321 first, then the other RFCs numerically, then the rest
    (security, …) by name."""
    if rfc == "5321":
        return (0, 0, "")
    return (1, int(rfc), "") if rfc.isdigit() else (2, 0, rfc)


def section_order(section: str) -> tuple[tuple[int, int, str], ...]:
    """Sections in numeric order: 4.1.1.10 after 4.1.1.9; words after numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in section.split("."))


def sorted_scenarios(scenarios: list[Scenario]) -> list[Scenario]:
    return sorted(scenarios, key=lambda s: (rfc_order(s.rfc), section_order(s.section), s.id))
