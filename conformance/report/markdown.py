"""The findings-first summary as Markdown: GitHub's step summary (`$GITHUB_STEP_SUMMARY`) or any file.

Same order as the HTML report: counts per target, then per target its FAIL and NON-STRICT findings by
RFC section (one line each: id, title, level, expected / actual), then why scenarios could not run,
then how the targets differ. Bounded in size (GitHub caps a step summary at 1 MiB).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import findings as fnd

__all__ = ["render_markdown", "write_markdown", "append_markdown"]

_OUTCOMES = ("pass", "fail", "non-strict", "info", "unsupported", "skipped", "error")
_WORDS = {"fail": "FAIL", "non-strict": "NON-STRICT"}
MAX_FINDINGS_PER_TARGET = 200  # beyond that, a line points to the HTML report
MAX_BYTES = 900_000


def _code(value: str, limit: int = 160) -> str:
    """Inline code that survives any content: backticks cannot close it, pipes cannot split a table."""
    value = value if len(value) <= limit else value[: limit - 1] + "\u2026"
    value = value.replace("|", "\\|")
    fence = "``" if "`" in value else "`"
    pad = " " if value[:1] == "`" or value[-1:] == "`" else ""
    return f"{fence}{pad}{value}{pad}{fence}" if value else "\u2014"


def _plain(text: str) -> str:
    """Markdown-inert text for titles (no HTML, no emphasis surprises)."""
    for ch in "\\`*_[]<>|#":
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def render_markdown(doc: Mapping[str, Any], report_link: str | None = None) -> str:
    labels = fnd.targets_of(doc)
    results = [r for r in doc.get("results") or [] if isinstance(r, Mapping)]
    counts: dict[str, dict[str, int]] = {label: dict.fromkeys(_OUTCOMES, 0) for label in labels}
    for r in results:
        counts.setdefault(str(r.get("target")), dict.fromkeys(_OUTCOMES, 0))
        outcome = str(r.get("outcome"))
        counts[str(r.get("target"))][outcome] = counts[str(r.get("target"))].get(outcome, 0) + 1
    profiles = {str(t.get("label")): t.get("profile") or (t.get("params") or {}).get("profile")
                for t in doc.get("targets") or [] if isinstance(t, Mapping)}

    out = ["## SMTP conformance", ""]
    found = fnd.findings_by_target(doc)
    n_fail = sum(1 for items in found.values() for f in items if f.outcome == "fail")
    n_ns = sum(1 for items in found.values() for f in items if f.outcome == "non-strict")
    out.append(f"**{n_fail} FAIL**, **{n_ns} NON-STRICT** across {len(labels)} target(s), {len(results)} results."
               + (f" Full report: {report_link}" if report_link else ""))
    out += ["", "| target | " + " | ".join(_OUTCOMES) + " |", "|---|" + "---:|" * len(_OUTCOMES)]
    for label in labels:
        profile = f" ({profiles[label]})" if profiles.get(label) else ""
        out.append(f"| {_plain(label)}{profile} | " + " | ".join(str(counts[label].get(o, 0)) for o in _OUTCOMES)
                   + " |")

    blocked = fnd.blocked_by_target(doc)
    for label in labels:
        items = found.get(label, [])
        out += ["", f"### {_plain(label)}"]
        if not items:
            out.append("No FAIL or NON-STRICT findings.")
        heading = None
        for f in items[:MAX_FINDINGS_PER_TARGET]:
            if f.heading != heading:
                heading = f.heading
                out += ["", f"**{_plain(heading)}**", ""]
            base = " (baselined)" if f.result.get("baselined") else ""
            out.append(f"- **{_WORDS.get(f.outcome, f.outcome.upper())}**{base} {_code(f.id)} {_plain(f.title)}"
                       f" \u00b7 {f.level} \u00b7 expected {_code(f.expected)} / actual {_code(f.actual)}"
                       f" \u00b7 {_code(f'{f.file}:{f.line}')}")
        if len(items) > MAX_FINDINGS_PER_TARGET:
            out.append(f"- \u2026 {len(items) - MAX_FINDINGS_PER_TARGET} more in the HTML report")
        reasons = blocked.get(label, [])
        if reasons:
            out += ["", "Could not run: " + "; ".join(f"{b.reason}: {b.count}" for b in reasons) + "."]

    if len(labels) > 1:
        out += ["", "### How the targets differ", ""]
        out += [f"- {_plain(p.sentence())}" for p in fnd.pair_summaries(doc, labels)]
    text = "\n".join(out) + "\n"
    if len(text.encode()) > MAX_BYTES:
        text = text.encode()[:MAX_BYTES].decode(errors="ignore").rsplit("\n", 1)[0]
        text += "\n\n*(summary truncated; see the HTML report)*\n"
    return text


def write_markdown(doc: Mapping[str, Any], path: Path, report_link: str | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(doc, report_link), encoding="utf-8")


def append_markdown(doc: Mapping[str, Any], path: Path, report_link: str | None = None) -> None:
    """Append (GitHub's step summary file collects every step's output)."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(render_markdown(doc, report_link))
