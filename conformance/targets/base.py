"""The Target interface shared by every kind of server under test."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

from ..dialogue import Endpoint
from ..mailbox import Mailbox, parse_mailbox
from ..templates import credential_values


class TargetError(Exception):
    """The target could not be started or reached: every scenario against it is an ERROR."""


@dataclass(frozen=True)
class TargetParams:
    """What scenarios may assume about a target (its `{variables}`), plus how to talk to it."""

    domain: str = "example.test"
    rcpt: str | None = None  # default user@<domain>
    foreign_rcpt: str = "relay-test@foreign.invalid"
    sender: str = "tester@example.net"
    client: str = "client.example.net"
    user: str | None = None
    password: str | None = None
    maildir: str | None = None  # shorthand for mailbox maildir:PATH
    mailbox: str | None = None  # where accepted mail can be read back (conformance.mailbox specs)
    tls: str = "none"  # "none" or "implicit"
    verify_tls: bool = False
    concurrency: int | None = None  # lower the suite's concurrency for this target (1 = one at a time)
    startup_timeout: float = 30.0
    time_limit: float | None = None  # all of this target's dialogues must finish within this many seconds
    profile: str | None = None  # server profile (C3): mx, submission, relay, catcher; None = every profile

    def values(self) -> dict[str, str]:
        out = {
            "domain": self.domain,
            "rcpt": self.rcpt or f"user@{self.domain}",
            "foreign_rcpt": self.foreign_rcpt,
            "sender": self.sender,
            "client": self.client,
        }
        if self.user is not None and self.password is not None:
            out.update(credential_values(self.user, self.password))
        return out

    def public(self) -> dict[str, object]:
        """For reports: never the credentials."""
        values = self.values()
        return {k: values[k] for k in ("domain", "rcpt", "foreign_rcpt", "sender", "client")} | {
            "tls": self.tls, "credentials": self.user is not None, "mailbox": self.mailbox_spec(),
            "profile": self.profile}

    def mailbox_spec(self) -> str | None:
        return self.mailbox or (f"maildir:{self.maildir}" if self.maildir else None)

    def with_(self, **changes: object) -> TargetParams:
        return replace(self, **changes)


@dataclass
class Target(ABC):
    label: str
    spec: str
    params: TargetParams = field(default_factory=TargetParams)
    kind: str = "address"
    baseline: str | None = None  # file or folder of this target's expected deviations
    config: str | None = None  # a label for the server's configuration, shown with its identity

    @abstractmethod
    def start(self) -> Endpoint:
        """Make the server reachable (blocking); raise TargetError with a one-line reason."""

    def stop(self) -> None:  # noqa: B027 - most targets have nothing to stop
        """Release everything start() acquired. Must be safe to call twice and after a failed start."""

    def details(self) -> dict[str, object]:
        return {}

    def logs(self) -> dict[str, str]:
        return {}

    def mailbox(self) -> Mailbox | None:
        """Where this target's accepted mail can be read back (kinds may override: containers)."""
        spec = self.params.mailbox_spec()
        return parse_mailbox(spec) if spec else None

    def capabilities(self) -> set[str]:
        """Target parameters scenarios may `need`: credentials, mailbox."""
        caps = {"implicit-tls" if self.params.tls == "implicit" else "plaintext"}
        if self.params.user is not None:
            caps.add("credentials")
        if self.mailbox() is not None:
            caps.add("mailbox")
        return caps
