"""The Target interface shared by every kind of server under test."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..mailbox import Mailbox, parse_mailbox
from ..model import PROFILES
from ..templates import credential_values

MAILBOX_HELP = ("where accepted mail can be read back: maildir:PATH, mailhog:URL, mailpit:URL, maildev:URL, "
                "pop3://USER:PASS@HOST:PORT, imap://USER:PASS@HOST:PORT")


@dataclass
class Endpoint:
    """Where and how to connect: what a Target hands the engine."""

    host: str
    port: int
    implicit_tls: bool = False
    server_hostname: str | None = None


def sanitize_label(label: str) -> str:
    """Labels appear in pytest node ids: keep them free of '::' and brackets."""
    clean = re.sub(r"[^A-Za-z0-9_.:@+-]+", "-", label).replace("::", ":").strip("-")
    return clean or "target"


class TargetError(Exception):
    """The target could not be started or reached: every scenario against it is an ERROR."""


@dataclass(frozen=True)
class Param:
    """One target parameter as every front door shows it: the targets-file key `name`, the command-line
    options `--NAME` (smtp-conformance run) and `--smtp-NAME` (pytest) when `cli`, and its JSON Schema."""

    name: str  # targets-file key; on the command line with '-' for '_'
    help: str
    schema: dict[str, Any]
    cli: bool = True
    fields: tuple[str, ...] = ()  # the TargetParams fields it sets (default: the one named `name`)

    @property
    def option(self) -> str:
        return self.name.replace("_", "-")

    @property
    def flag(self) -> bool:
        return self.schema.get("type") == "boolean"

    @property
    def choices(self) -> list[str] | None:
        return self.schema.get("enum")


def _param(default: Any, help: str, schema: dict[str, Any], *, cli: bool = True, name: str | None = None,
           sets: tuple[str, ...] = ()) -> Any:
    """A TargetParams field that is also a target parameter (see `parameters()`)."""
    return field(default=default, metadata={"param": (help, schema, cli, name, sets)})


_STR = {"type": "string"}


@dataclass(frozen=True)
class TargetParams:
    """What scenarios may assume about a target (its `{variables}`), plus how to talk to it.

    Every field declared with `_param` is a target parameter: the CLI options, the pytest options and the
    targets-file schema are generated from these declarations (adding a parameter is one field here)."""

    domain: str = _param("example.test", "mail domain of the servers (default example.test)", _STR)
    rcpt: str | None = _param(None, "a recipient they accept (default user@DOMAIN)", _STR)
    foreign_rcpt: str = _param("relay-test@foreign.invalid",
                               "a recipient they must not relay to (default relay-test@foreign.invalid)", _STR)
    sender: str = _param("tester@example.net", "reverse-path for MAIL FROM (default tester@example.net)", _STR)
    client: str = _param("client.example.net", "name the client gives in EHLO (default client.example.net)", _STR)
    user: str | None = _param(None, "AUTH credentials USER:PASSWORD",
                              {"type": "string", "pattern": "^[^:]+:.*$", "description": "USER:PASSWORD"},
                              name="auth", sets=("user", "password"))
    password: str | None = None
    maildir: str | None = _param(None, "Maildir where the server stores accepted mail, for delivery checks",
                                 {"type": "string", "description": "shorthand for mailbox: maildir:PATH"})
    mailbox: str | None = _param(None, MAILBOX_HELP, {"type": "string", "description": MAILBOX_HELP})
    tls: str = _param("none", "implicit: TLS from the first byte (port 465 style, RFC 8314)",
                      {"enum": ["none", "implicit"]})
    verify_tls: bool = _param(False, "check server certificates (off by default)", {"type": "boolean"})
    concurrency: int | None = _param(None, "lower the suite's concurrency for this target (1 = one at a time)",
                                     {"type": "integer", "minimum": 1, "maximum": 256}, cli=False)
    startup_timeout: float = _param(30.0, "seconds a started target may take to accept connections",
                                    {"type": "number", "exclusiveMinimum": 0, "maximum": 600}, cli=False)
    time_limit: float | None = _param(
        None, "seconds for all of this target's scenarios; what is left after that FAILs as not run",
        {"type": "number", "exclusiveMinimum": 0, "maximum": 86400,
         "description": "seconds for all of this target's scenarios; what is left after that FAILs as not run"},
        cli=False)
    profile: str | None = _param(None, "server profile: mx, submission, relay or catcher (default: judge only what "
                                 "holds for every profile)", {"enum": list(PROFILES)})

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


def parameters() -> list[Param]:
    """The target parameters, in declaration order."""
    out = []
    for f in fields(TargetParams):
        if "param" in f.metadata:
            help_text, schema, cli, name, sets = f.metadata["param"]
            out.append(Param(name or f.name, help_text, schema, cli, sets or (f.name,)))
    return out


def option_kwargs(p: Param) -> dict[str, Any]:
    """argparse / pytest `addoption` keywords for a parameter's command-line option."""
    if p.flag:
        return {"action": "store_true", "help": p.help}
    if p.choices:
        default = next(f.default for f in fields(TargetParams) if f.name == p.fields[0])
        return {"choices": p.choices, "default": default, "help": p.help}
    return {"metavar": p.name.upper(), "help": p.help}


_LABELLED = re.compile(r"^([A-Za-z0-9_.-]+)=(.*)$")


def split_labelled(value: str, labels: list[str]) -> tuple[str | None, str]:
    """`LABEL=VALUE` naming one of `labels` -> (LABEL, VALUE); anything else applies to every target."""
    match = _LABELLED.match(value)
    if match and match.group(1) in labels:
        return match.group(1), match.group(2)
    return None, value


def per_target_changes(given: list[tuple[str, str, str]], targets: list[Target]) -> list[str]:
    """Apply (label, parameter name, value) to the targets so labelled (`--mailbox LABEL=VALUE`); the problems
    found, one line each."""
    by_label = {t.label: t for t in targets}
    names = {p.name: p for p in parameters()}
    problems = []
    for label, name, value in given:
        p = names.get(name)
        if p is None or label not in by_label:
            problems.append(f"--{name.replace('_', '-')} {label}=…: no target is labelled {label!r} "
                            f"(labels: {', '.join(by_label) or 'none'})")
            continue
        if p.choices and value not in p.choices:
            problems.append(f"--{p.option} {label}={value}: expected one of {', '.join(p.choices)}")
            continue
        changes, wrong = parameter_changes({name: value})
        problems += [f"--{p.option} {label}=…: {message}" for _, message in wrong]
        target = by_label[label]
        target.params = target.params.with_(**changes)
    return problems


def parameter_changes(given: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """TargetParams changes from parameter values by name (from any front door), and the problems found as
    (parameter name, message): the one place USER:PASSWORD and mailbox specs are checked."""
    changes: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for p in parameters():
        if p.name not in given:
            continue
        value = given[p.name]
        if p.name == "auth":
            user, sep, password = str(value).partition(":")
            if not sep:
                problems.append((p.name, "expected USER:PASSWORD"))
                continue
            changes.update(user=user, password=password)
            continue
        if p.name == "mailbox":
            try:
                parse_mailbox(value)
            except ValueError as exc:
                problems.append((p.name, str(exc)))
                continue
        changes[p.fields[0]] = value
    return changes, problems


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
