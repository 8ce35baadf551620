"""A mistake in an input file, as one `file:line: problem` line; JSON Schema errors turned into such lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .yamlload import Document


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def schema_problems(validator: jsonschema.Draft202012Validator, doc: Document, file: str,
                    defs: dict[str, Any] | None = None) -> list[Problem]:
    """JSON Schema errors as one `file:line: problem` each, pointing at the most specific line."""
    out: list[Problem] = []
    seen: set[tuple[int, str]] = set()
    for error in validator.iter_errors(doc.data):
        error = _most_specific(error, defs)
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            path += tuple(extra[:1])  # point at the offending key's own line
        key = (doc.line(path), _describe_error(error, defs))
        if key not in seen:
            seen.add(key)
            out.append(Problem(file, *key))
    return sorted(out, key=lambda p: p.line)


def _is_reply_pattern_schema(error: ValidationError, defs: dict[str, Any] | None) -> bool:
    return defs is not None and any(error.schema is defs.get(k) for k in ("expect", "alternative", "code"))


def _most_specific(error: ValidationError, defs: dict[str, Any] | None = None) -> ValidationError:
    """Descend anyOf/oneOf to the branch the author most likely meant."""
    while error.context:
        if _is_reply_pattern_schema(error, defs) and not isinstance(error.instance, dict | list):
            break  # a scalar where a reply code belongs: say that, not "expected array"
        candidates = [e for e in error.context if e.validator != "type"] or list(error.context)
        deeper = best_match(candidates)
        if deeper is None or deeper is error:
            break
        error = deeper
    return error


def _where(error: ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe_error(error: ValidationError, defs: dict[str, Any] | None = None) -> str:
    where = _where(error)
    prefix = f"{where}: " if where else ""
    if error.validator == "anyOf" and _is_reply_pattern_schema(error, defs):
        return (f"{prefix}{short_value(error.instance)} is not a reply code (200-599, or a wildcard such as \"2xx\") "
                "nor an alternative mapping (code/enhanced/text/close/silence/outcome/note/stop)")
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"{prefix}missing required key '{missing[0]}'" if missing else prefix + error.message
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"{prefix}unknown key '{extra[0]}'{did_you_mean(extra[0], allowed)} (allowed: {', '.join(allowed)})"
    if error.validator == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        hint = did_you_mean(error.instance, [str(c) for c in error.validator_value]) if isinstance(
            error.instance, str) else ""
        return f"{prefix}{error.instance!r} is not one of: {choices}{hint}"
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{prefix}expected {expected}, got {type(error.instance).__name__} {short_value(error.instance)}"
    if error.validator == "pattern":
        return f"{prefix}{short_value(error.instance)} does not match the pattern {error.validator_value}"
    return prefix + error.message.replace("\n", " ")[:200]


def did_you_mean(word: str, choices: list[str], n: int = 2, cutoff: float = 0.6) -> str:
    """`; did you mean 'x'?` for a close match among `choices`, else nothing."""
    import difflib

    close = difflib.get_close_matches(word, choices, n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def short_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
