"""Findings first: what every report surface (HTML, terminal, Markdown, GitHub, SARIF) leads with.

Reads a results document (docs/results-format.md) and answers three questions the same way for every
output: which FAIL / NON-STRICT findings each target has (grouped by RFC section, core RFC 5321 first,
then extensions numerically, then security), why scenarios could not run (counted by reason), and how
two targets differ. No rendering here: plain data the renderers format.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

__all__ = [
    "FINDING_OUTCOMES", "Finding", "BlockedReason", "PairSummary", "category", "order_key", "findings_by_target",
    "blocked_reason", "blocked_by_target", "expected_actual", "finding_location", "pair_summaries", "targets_of",
]

# The outcomes a report lists first, worst first.
FINDING_OUTCOMES: tuple[str, ...] = ("fail", "non-strict")

# Reasons a scenario could not run (shown with counts after the findings).
NO_MAILBOX = "no mailbox"
NO_CREDENTIALS = "no credentials"
NOT_OFFERED = "extension not offered"
SETUP_REFUSED = "setup refused by policy"
TRANSIENT = "server unavailable for now (421 / 454)"
UNREACHABLE = "target not reachable / no greeting"
TIME_LIMIT = "target's time limit used up"
MISSING_VALUE = "server reply lacked a needed value"
WRONG_TRANSPORT = "needs another transport (TLS mode)"
NOT_APPLICABLE = "not applicable to this profile / excluded"
HARNESS = "harness could not judge"
OTHER = "other"
REASON_ORDER = (NO_MAILBOX, NO_CREDENTIALS, NOT_OFFERED, SETUP_REFUSED, TRANSIENT, MISSING_VALUE, WRONG_TRANSPORT,
                TIME_LIMIT, NOT_APPLICABLE, UNREACHABLE, HARNESS, OTHER)

# Causes (contract C1, conformance.model.Cause) that mean "the requirement was never reached".
_CAUSE_REASON = {
    "unsupported-extension": NOT_OFFERED,
    "setup-refused": SETUP_REFUSED,
    "transient": TRANSIENT,
    "time-limit": TIME_LIMIT,
    "not-started": UNREACHABLE,
    "no-greeting": UNREACHABLE,
    "refused": UNREACHABLE,
    "harness": HARNESS,
}
_CORE_RFC = "5321"


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _natural(text: str) -> tuple[tuple[int, int, str], ...]:
    """"4.1.1.10" after "4.1.1.9"; letters (appendices) after numbers; empty last."""
    if not text:
        return ((3, 0, ""),)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.findall(r"\d+|[^\d.]+", text))


def category(result: Mapping[str, Any]) -> tuple[int, str]:
    """(rank, heading): RFC 5321 core first, then each extension RFC numerically, then security."""
    parts = PurePath(_s(result.get("file"))).parts
    if "security" in parts[:-1]:
        return 2, "Security"
    rfc = _s(result.get("rfc"))
    if rfc == _CORE_RFC:
        return 0, f"RFC {rfc}"
    return 1, f"RFC {rfc}" if rfc else "(no RFC)"


def order_key(result: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key of a scenario in every report: category, RFC number, section (natural order)."""
    rank, _ = category(result)
    rfc = _s(result.get("rfc"))
    return rank, (int(rfc) if rfc.isdigit() else 1_000_000), rfc, _natural(_s(result.get("section")))


def expected_actual(result: Mapping[str, Any]) -> tuple[str, str]:
    """What was acceptable and what came back, from the decisive step (else from the message)."""
    step = result.get("step")
    if isinstance(step, Mapping):
        expected = [_s(x) for x in (step.get("expected") or [])]
        exp = expected[0] if len(expected) == 1 else ("one of " + " | ".join(expected) if expected else "")
        return exp, _s(step.get("actual"))
    message = _s(result.get("message"))
    return "", message


def finding_location(result: Mapping[str, Any]) -> tuple[str, int]:
    """The scenario YAML file and line of the deciding step (else of the scenario)."""
    step = result.get("step")
    if isinstance(step, Mapping) and step.get("file") and isinstance(step.get("line"), int):
        return _s(step["file"]), int(step["line"])
    line = result.get("line")
    return _s(result.get("file")), int(line) if isinstance(line, int) and not isinstance(line, bool) else 1


@dataclass(frozen=True)
class Finding:
    target: str
    id: str
    title: str
    level: str
    outcome: str
    rfc: str
    section: str
    expected: str
    actual: str
    file: str
    line: int
    result: Mapping[str, Any] = field(compare=False, repr=False)

    @property
    def where(self) -> str:
        return f"RFC {self.rfc} §{self.section}" if self.rfc else f"§{self.section}"

    @property
    def heading(self) -> str:
        """Group heading: the category (security has its own) and the section."""
        rank, name = category(self.result)
        return f"{name}: RFC {self.rfc} §{self.section}" if rank == 2 else f"RFC {self.rfc} §{self.section}"


def targets_of(doc: Mapping[str, Any]) -> list[str]:
    """Target labels: declared ones in order, then labels only seen in results."""
    labels = [_s(t.get("label")) for t in doc.get("targets") or [] if isinstance(t, Mapping)]
    for r in _results(doc):
        label = _s(r.get("target"))
        if label not in labels:
            labels.append(label)
    return labels


def _results(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in doc.get("results") or [] if isinstance(r, Mapping)]


def _finding(r: Mapping[str, Any]) -> Finding:
    expected, actual = expected_actual(r)
    file, line = finding_location(r)
    return Finding(target=_s(r.get("target")), id=_s(r.get("id")), title=_s(r.get("title")),
                   level=_s(r.get("level")), outcome=_s(r.get("outcome")), rfc=_s(r.get("rfc")),
                   section=_s(r.get("section")), expected=expected, actual=actual, file=file, line=line, result=r)


def findings_by_target(doc: Mapping[str, Any], include_baselined: bool = True) -> dict[str, list[Finding]]:
    """Per target (in column order): its FAIL then NON-STRICT results, each group in report order."""
    out: dict[str, list[Finding]] = {label: [] for label in targets_of(doc)}
    for r in _results(doc):
        if _s(r.get("outcome")) in FINDING_OUTCOMES and (include_baselined or not r.get("baselined")):
            out.setdefault(_s(r.get("target")), []).append(_finding(r))
    for items in out.values():
        items.sort(key=lambda f: (FINDING_OUTCOMES.index(f.outcome), order_key(f.result), f.id))
    return out


# --------------------------------------------------------------------------- could not run


def _keyword_names(target: Mapping[str, Any]) -> set[str]:
    names = set()
    for key in ("ehlo_keywords", "tls_ehlo_keywords"):
        for k in target.get(key) or []:
            if _s(k).split():
                names.add(_s(k).split()[0].upper())
    return names


def blocked_reason(result: Mapping[str, Any], target: Mapping[str, Any] | None = None) -> str | None:
    """Why a result's requirement was never judged, or None when it was (pass/fail/non-strict/info).

    The machine-readable `cause` (contract C1) decides when present; otherwise the result's own
    fields (outcome, decisive step, the scenario's `requires` / `needs`) and the target's identity.
    Never the message text.
    """
    outcome = _s(result.get("outcome"))
    cause = _s(result.get("cause"))
    target = target or {}
    params = target.get("params") if isinstance(target.get("params"), Mapping) else {}
    needs = [_s(n) for n in result.get("needs") or []]
    if outcome in ("pass", "fail", "non-strict"):
        return None
    if outcome == "info":
        # INFO is a judgement, unless a policy reply stopped the dialogue before the checked step
        return _CAUSE_REASON.get(cause) if cause in ("setup-refused", "transient") else None
    if outcome == "error":
        return _CAUSE_REASON.get(cause, HARNESS)
    if outcome == "skipped":
        return _CAUSE_REASON.get(cause, NOT_APPLICABLE)
    # unsupported
    if cause in _CAUSE_REASON:
        return _CAUSE_REASON[cause]
    step = result.get("step")
    expected = [_s(x) for x in step.get("expected") or []] if isinstance(step, Mapping) else []
    if expected == ["a mailbox"]:  # the `delivered` step found no mailbox to read
        return NO_MAILBOX
    if cause == "missing-parameter":
        return _missing_parameter(result, needs, params)
    if isinstance(step, Mapping):
        return NOT_OFFERED  # a require/starttls step found the keyword missing in this session
    requires = [_s(k).upper() for k in result.get("requires") or []]
    offered = _keyword_names(target)
    if requires and target and any(k.split()[0] not in offered for k in requires if k.split()):
        return NOT_OFFERED
    if needs:
        return _missing_parameter(result, needs, params)
    return NOT_OFFERED if requires else OTHER


def _missing_parameter(result: Mapping[str, Any], needs: list[str], params: Mapping[str, Any]) -> str:
    if "credentials" in needs and not params.get("credentials", False):
        return NO_CREDENTIALS
    if "mailbox" in needs and not params.get("mailbox"):
        return NO_MAILBOX
    if any(n in ("implicit-tls", "plaintext") for n in needs):
        return WRONG_TRANSPORT
    if "credentials" in needs:
        return NO_CREDENTIALS
    if "mailbox" in needs:
        return NO_MAILBOX
    return MISSING_VALUE  # e.g. a `capture:` found nothing in the reply (contract C5)


@dataclass(frozen=True)
class BlockedReason:
    reason: str
    count: int
    ids: tuple[str, ...]


def blocked_by_target(doc: Mapping[str, Any]) -> dict[str, list[BlockedReason]]:
    """Per target: reasons scenarios could not run, with counts, in REASON_ORDER."""
    target_docs = {_s(t.get("label")): t for t in doc.get("targets") or [] if isinstance(t, Mapping)}
    grouped: dict[str, dict[str, list[str]]] = {label: {} for label in targets_of(doc)}
    for r in _results(doc):
        label = _s(r.get("target"))
        reason = blocked_reason(r, target_docs.get(label))
        if reason:
            grouped.setdefault(label, {}).setdefault(reason, []).append(_s(r.get("id")))
    return {label: [BlockedReason(reason, len(ids), tuple(ids))
                    for reason in sorted(reasons, key=lambda x: REASON_ORDER.index(x) if x in REASON_ORDER else 99)
                    for ids in [reasons[reason]]]
            for label, reasons in grouped.items()}


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class PairSummary:
    a: str
    b: str
    differing: int
    compared: int
    by_tag: tuple[tuple[str, int], ...]
    ids: tuple[str, ...]

    def sentence(self) -> str:
        if not self.differing:
            return f"{self.a} and {self.b} agree on all {self.compared} scenarios run against both."
        tags = ", ".join(f"{n} {tag}" for tag, n in self.by_tag[:8])
        more = "" if len(self.by_tag) <= 8 else f", {len(self.by_tag) - 8} more categories"
        return (f"{self.a} differs from {self.b} on {self.differing} of {self.compared} scenarios"
                + (f": {tags}{more}" if tags else "") + ".")


def _category_of(r: Mapping[str, Any]) -> str:
    """The category a difference is counted under: the first tag (by convention the specific one), else
    the section."""
    tags = [t for t in (r.get("tags") or []) if _s(t) and _s(t) != "core"]
    return _s(tags[0]) if tags else f"§{_s(r.get('section'))}"


def pair_summaries(doc: Mapping[str, Any], labels: Iterable[str] | None = None) -> list[PairSummary]:
    """One summary per target pair: on how many scenarios their outcomes differ, counted by category."""
    labels = list(labels) if labels is not None else targets_of(doc)
    by_target: dict[str, dict[str, Mapping[str, Any]]] = {label: {} for label in labels}
    for r in _results(doc):
        by_target.setdefault(_s(r.get("target")), {}).setdefault(_s(r.get("id")), r)
    # each result's outcome read once, not once per pair it is in (435 pairs for 30 targets)
    outcomes = {label: {sid: _s(r.get("outcome")) for sid, r in results.items()}
                for label, results in by_target.items()}
    out = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            of_a, of_b = outcomes[a], outcomes[b]
            common = [sid for sid in of_a if sid in of_b]
            differing = [sid for sid in common if of_a[sid] != of_b[sid]]
            tags = Counter(_category_of(by_target[a][sid]) for sid in differing)
            out.append(PairSummary(a, b, len(differing), len(common),
                                   tuple(sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))), tuple(differing)))
    return out
