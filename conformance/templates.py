"""`{variable}` templates in scenario text: parsed when a scenario loads, rendered per target."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Collection, Mapping

from .escapes import EscapeError, decode_escapes
from .model import Template, TemplatePart, Var

# Variables a scenario may use; their values come from the target's parameters.
VARIABLES = {
    "domain": "the target's mail domain (default example.test)",
    "rcpt": "a recipient the target accepts (default user@<domain>)",
    "foreign_rcpt": "a recipient in a domain the target must not relay to",
    "sender": "a reverse-path for MAIL FROM",
    "client": "the client's name for EHLO/HELO",
    "user": "AUTH user name",
    "password": "AUTH password",
    "auth_plain": "base64 of \\0user\\0password for AUTH PLAIN",
    "auth_login_user": "base64 of the user name for AUTH LOGIN",
    "auth_login_password": "base64 of the password for AUTH LOGIN",
    "i": "the repetition number (1, 2, …) inside a step with repeat",
    "token": "a value unique to this dialogue, to find its messages in the target's mailbox",
    "cram_md5": "the AUTH CRAM-MD5 response to the challenge in the previous 334 reply",
}
CREDENTIAL_VARIABLES = frozenset({"user", "password", "auth_plain", "auth_login_user", "auth_login_password",
                                  "cram_md5"})
MAX_REPEAT_OCTETS = 64 * 1024 * 1024
# a `capture:` name: lower-case, so it can never be read as a regex quantifier such as {4} or {2,3}
CAPTURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class TemplateError(ValueError):
    pass


def parse_template(text: str, captured: Collection[str] = ()) -> Template:
    """Split text into literal bytes and placeholders; `{{` and `}}` are literal braces. `captured`: names an
    earlier step's `capture:` defines, usable like the target's variables."""
    parts: list[TemplatePart] = []
    literal: list[str] = []
    i = 0

    def flush() -> None:
        if literal:
            try:
                parts.append(decode_escapes("".join(literal)))
            except EscapeError as exc:
                raise TemplateError(str(exc)) from None
            literal.clear()

    while i < len(text):
        ch = text[i]
        if ch == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif ch == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif ch == "{" and text.startswith("{base64:", i):
            end = _matching_brace(text, i)
            flush()
            parts.append(Var("base64", inner=parse_template(text[i + len("{base64:") : end], captured)))
            i = end + 1
        elif ch == "{":
            end = text.find("}", i)
            if end < 0:
                raise TemplateError("unclosed '{' (write {{ for a literal brace)")
            flush()
            parts.append(_parse_placeholder(text[i + 1 : end], captured))
            i = end + 1
        elif ch == "}":
            raise TemplateError("stray '}' (write }} for a literal brace)")
        else:
            literal.append(ch)
            i += 1
    flush()
    return Template(parts=tuple(parts), source_text=text)


def _matching_brace(text: str, start: int) -> int:
    """Index of the `}` closing the placeholder opened at start; placeholders nest inside it (so a literal
    brace cannot appear inside {base64:…})."""
    depth, i = 0, start
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise TemplateError("unclosed '{base64:' (it ends with a matching '}')")


def _parse_placeholder(body: str, captured: Collection[str] = ()) -> Var:
    if body.startswith("repeat:"):
        text, sep, count = body[len("repeat:") :].rpartition(":")
        if not sep or not text or not count.isdigit():
            raise TemplateError(f"'{{{_shown(body)}}}': write {{repeat:TEXT:COUNT}}, e.g. {{repeat:a:64}}")
        try:
            unit = decode_escapes(text)
        except EscapeError as exc:
            raise TemplateError(str(exc)) from None
        if len(unit) * int(count) > MAX_REPEAT_OCTETS:
            raise TemplateError(f"'{{{_shown(body)}}}' would be over {MAX_REPEAT_OCTETS} octets")
        return Var("repeat", (text, count))
    if body not in VARIABLES and body not in captured:
        known = ", ".join(sorted(VARIABLES))
        if captured:
            known += "; captured: " + ", ".join(sorted(captured))
        raise TemplateError(f"unknown variable '{{{_shown(body)}}}' (known: {known}, repeat:TEXT:N, base64:TEXT)")
    return Var(body)


def _shown(body: str) -> str:
    """A placeholder's text for a one-line problem: its first line, at most 40 characters."""
    first = body.splitlines()[0] if body.splitlines() else body
    return first[:40] + ("…" if len(first) > 40 or "\n" in body or "\r" in body else "")


def regex_with_values(pattern: str, values: Mapping[str, str]) -> str:
    """A regular expression with `{name}` of known variables replaced by their escaped values (other braces,
    such as quantifiers `{4}`, stay as they are). Unknown values become a literal placeholder."""
    for name in VARIABLES:
        pattern = pattern.replace("{" + name + "}", re.escape(values.get(name, f"<{name}>")))
    for name, value in values.items():  # values captured from earlier replies (capture:)
        if name not in VARIABLES and CAPTURE_NAME.match(name):
            pattern = pattern.replace("{" + name + "}", re.escape(value))
    return pattern


def render(template: Template, values: Mapping[str, str]) -> bytes:
    out = bytearray()
    for part in template.parts:
        if isinstance(part, bytes):
            out += part
        elif part.name == "repeat":
            out += decode_escapes(part.args[0]) * int(part.args[1])
        elif part.name == "base64" and part.inner is not None:
            out += base64.b64encode(render(part.inner, values))
        else:
            out += values[part.name].encode("utf-8")
    return bytes(out)


def cram_md5_response(user: str, password: str, challenge_b64: str) -> str:
    """RFC 2195: base64(user SP hex(HMAC-MD5(password, challenge)))."""
    try:
        challenge = base64.b64decode(challenge_b64.strip(), validate=True)
    except ValueError:
        challenge = challenge_b64.strip().encode()
    digest = hmac.new(password.encode("utf-8"), challenge, hashlib.md5).hexdigest()
    return base64.b64encode(f"{user} {digest}".encode()).decode("ascii")


def credential_values(user: str, password: str) -> dict[str, str]:
    def b64(raw: str) -> str:
        return base64.b64encode(raw.encode("utf-8")).decode("ascii")

    return {
        "user": user,
        "password": password,
        "auth_plain": b64(f"\0{user}\0{password}"),
        "auth_login_user": b64(user),
        "auth_login_password": b64(password),
    }
