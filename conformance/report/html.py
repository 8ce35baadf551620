"""The HTML report: one self-contained file rendered from a results document.

Input is the results dict described in `docs/results-format.md`. Output is a single HTML file with
inline CSS and a little inline vanilla JavaScript: no external resources, works offline and from
file://. Layout (Autobahn-like):

* header: tool, run, counts per outcome;
* one card per target (identity, counts, command logs);
* the comparison matrix: rows = scenarios grouped by RFC then section, columns = targets, each
  cell = outcome colour + decisive reply code, linked to the result's detail block;
* one collapsed ``<details>`` block per result (quote, decisive step, findings, transcript,
  reproduce command).

Everything taken from the document is HTML-escaped by Jinja's autoescaping (server bytes are
untrusted); values used in ``id``/``href``/``data-*``/``class`` attributes are also reduced to
``[A-Za-z0-9_-]``. No data is embedded in the inline script.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace as _NS
from typing import Any

from markupsafe import Markup, escape

from ..failure import Failure, transcript_rows
from ..failure import display_text as _s
from ..results import missing_parameter_lines
from . import findings as fnd
from .common import environment as _environment
from .common import visible_markup, visible_text, wire_markup

__all__ = ["OUTCOMES", "render_html", "write_html", "sanitize_token", "result_anchor", "wire_markup",
           "visible_markup", "visible_text"]

# Display order of the outcome classes (docs/results-format.md, "Outcomes").
OUTCOMES: tuple[str, ...] = ("pass", "fail", "non-strict", "info", "unsupported", "skipped", "error")

# Readable without colour: every outcome has a symbol and a word (legend, cells, badges).
SYMBOLS = {"pass": "\u2713", "fail": "\u2717", "non-strict": "!", "info": "i", "unsupported": "\u2013",
           "skipped": "\u25cb", "error": "\u26a0"}
WORDS = {"pass": "PASS", "fail": "FAIL", "non-strict": "NON-STRICT", "info": "INFO", "unsupported": "UNSUPPORTED",
         "skipped": "SKIPPED", "error": "ERROR"}
MEANINGS = {
    "pass": "behaviour the RFC allows",
    "fail": "a MUST / MUST NOT broken",
    "non-strict": "a SHOULD / SHOULD NOT broken (still conformant)",
    "info": "the RFC leaves it open; which way the server went",
    "unsupported": "could not run: extension not offered, or a parameter (mailbox, credentials) missing",
    "skipped": "excluded by selection, profile or configuration",
    "error": "the harness could not judge (never the server's fault)",
}

# Cell text when a result has no decisive reply code.
_MARKERS = {"timeout": "T/O", "reset": "RST"}
_NO_CODE = "\u2014"  # em dash
LEAN_REPORT_RESULTS = 3000  # above this many results, passing results' transcripts stay out of the page
_TOOLTIP_MAX = 400

_TOKEN_RE = re.compile(r"[^A-Za-z0-9_-]")
def _identity_line(details: dict[str, Any], spec: str) -> str:
    """What the column header says besides label and banner: image and digest, server version, or spec."""
    image = _s(details.get("image"))
    digest = _s(details.get("repo_digest")) or _s(details.get("image_id"))
    what = f"{image} {digest.split(':')[-1][:12]}".strip() if image else _s(details.get("server")) or spec
    parts = [what, _s(details.get("config"))]
    return " · ".join(p for p in parts if p)


def sanitize_token(value: Any) -> str:
    """Reduce a value to ``[A-Za-z0-9_-]`` (every other character becomes ``_``)."""
    return _TOKEN_RE.sub("_", _s(value))


def result_anchor(target: Any, scenario_id: Any) -> str:
    """The (pre-deduplication) anchor id of a result's detail block."""
    return f"r-{sanitize_token(target)}--{sanitize_token(scenario_id)}"


def _unique(base: str, used: set[str], prefix: str = "") -> str:
    """`prefix + base`, or with a -2, -3 … suffix if already in `used`; records the result."""
    candidate = prefix + base
    n = 1
    while candidate in used:
        n += 1
        candidate = f"{prefix}{base}-{n}"
    used.add(candidate)
    return candidate


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _fmt_seconds(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _s(value)
    return f"{value:.{digits}f}"


def _natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key for "4.1.1.10" after "4.1.1.9"; strings after numbers; empty last."""
    if not text:
        return ((2, 0, ""),)
    parts = re.findall(r"\d+|[^\d.]+", text)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)


def _outcome_token(outcome: Any) -> str:
    return sanitize_token(outcome) or "unknown"


def _empty_counts() -> dict[str, int]:
    return {o: 0 for o in OUTCOMES}


def _count(counts: dict[str, int], outcome: str) -> None:
    counts[outcome] = counts.get(outcome, 0) + 1


def _count_list(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Known outcomes in display order, then any unknown ones that occurred."""
    items = [{"outcome": o, "cls": o, "n": counts.get(o, 0)} for o in OUTCOMES]
    items += [
        {"outcome": o, "cls": sanitize_token(o) or "unknown", "n": n}
        for o, n in sorted(counts.items())
        if o not in OUTCOMES
    ]
    return items


def _cell_text(result: Mapping[str, Any]) -> str:
    code = result.get("decisive_code")
    if code is not None and not isinstance(code, bool):
        return _s(code)
    return _MARKERS.get(_s(result.get("connection")), _NO_CODE)


def _tooltip(outcome: str, result: Mapping[str, Any]) -> str:
    text = outcome
    message = _s(result.get("message"))
    if message:
        text += ": " + message
    branch = _s(result.get("branch"))
    if branch:
        text += f" [branch: {branch}]"
    if len(text) > _TOOLTIP_MAX:
        text = text[: _TOOLTIP_MAX - 1] + "\u2026"
    return text


_SIDE_CLASS = {"c": "dir-c", "s": "dir-s", "e": "dir-ev"}  # client → server, server → client, events


def _transcript(entries: Iterable[Any]) -> list[_NS]:
    rows, _ = transcript_rows(_dict(entry) for entry in entries)
    return [_NS(cls=_SIDE_CLASS[row.side], text=escape(f"{row.t} {row.arrow} {row.label.ljust(2)} ")
                + (visible_markup(row.data) if row.side == "e" else wire_markup(row.data))) for row in rows]


def _step(step: Any, failure: Failure) -> _NS | None:
    if not isinstance(step, Mapping):
        return None
    return _NS(
        index=_s(step.get("index")),
        line=_s(step.get("line")),
        yaml=failure.yaml.rstrip("\n"),
        expected=failure.expected,
        actual=wire_markup(failure.actual),
    )


def _reply_line(result: Mapping[str, Any]) -> str:
    """The deciding reply as a line of text: the decisive step's actual, else the last reply line with the
    decisive code in the transcript (a PASS records no step), else the message."""
    actual = _s(_dict(result.get("step")).get("actual"))
    if actual:
        return actual
    code = result.get("decisive_code")
    if code is not None and not isinstance(code, bool):
        prefix = _s(code)
        for entry in reversed(_list(result.get("transcript"))):
            entry = _dict(entry)
            if entry.get("dir") != "S":
                continue
            lines = [x for x in _s(entry.get("data")).split("\\r\\n") if x]
            for line in reversed(lines):
                if line.startswith(prefix):
                    return line
    return _s(result.get("message"))


def _kv(mapping: Any) -> list[tuple[str, str]]:
    return [(_s(k), _s(v)) for k, v in _dict(mapping).items()]


# --------------------------------------------------------------------------- view model


def _build_context(results_doc: Mapping[str, Any]) -> dict[str, Any]:
    doc = _dict(results_doc)
    results = [r for r in _list(doc.get("results")) if isinstance(r, Mapping)]
    target_docs, labels = _columns(doc, results)
    # Element ids are sanitized, so distinct values can collide ("a.b" / "a_b"): suffix -2, -3 …
    used_ids: set[str] = set()
    target_token = {label: _unique(sanitize_token(label), used_ids, "t-")[2:] for label in labels}
    total_counts = _empty_counts()
    target_counts = {label: _empty_counts() for label in labels}
    rows: dict[str, dict[str, Any]] = {}
    anchors: dict[int, str] = {}  # id(result) -> its detail anchor, for the findings list
    lean = len(results) > LEAN_REPORT_RESULTS
    for r in results:
        outcome = _s(r.get("outcome"))
        _count(total_counts, outcome)
        _count(target_counts[_s(r.get("target"))], outcome)
        anchors[id(r)] = _add_result(rows, r, labels, used_ids, target_token, lean)
    body, details, groups, differences = _body(rows, labels)
    profiles = {_s(r.get("target")): _s(r.get("profile")) for r in results if r.get("profile")}
    would_add = _dict(_dict(doc.get("summary")).get("profile_would_add"))
    targets = [_target_card(label, target_docs[label], target_token[label], target_counts[label],
                            profiles.get(label, ""), would_add.get(label)) for label in labels]
    run_info = _run_info(_dict(doc.get("run")))
    tool = _dict(doc.get("tool"))
    tool_name = _s(tool.get("name")) or "smtp-conformance"
    return {
        "title": f"{tool_name} report" + (f" \u2014 {run_info['started']}" if run_info["started"] else ""),
        "tool_name": tool_name,
        "tool_version": _s(tool.get("version")),
        "format_version": _s(doc.get("format_version")),
        "run": run_info,
        "counts": _count_list(total_counts),
        "total": len(results),
        "outcomes": OUTCOMES,
        "targets": targets,
        "single": len(labels) == 1,
        "body": body,
        "n_rows": len(rows),
        "details": details,
        "detail_groups": groups,
        "findings": _findings_context(doc, labels, target_token, anchors),
        "findings_open": len(labels) <= 4,
        "pairs": [p.sentence() for p in fnd.pair_summaries(doc, labels)] if len(labels) > 1 else [],
        "differences": differences,
        "legend": [_NS(cls=o, symbol=SYMBOLS[o], word=WORDS[o], meaning=MEANINGS[o]) for o in OUTCOMES],
        "symbols": SYMBOLS,
        "words": WORDS,
        "hints": missing_parameter_lines([dict(r) for r in results]),
    }


def _columns(doc: Mapping[str, Any], results: list[Mapping[str, Any]]) -> tuple[dict[str, Mapping[str, Any]],
                                                                                 list[str]]:
    """Columns: declared targets in order, then labels only seen in results."""
    target_docs: dict[str, Mapping[str, Any]] = {}
    for t in _list(doc.get("targets")):
        if isinstance(t, Mapping):
            target_docs.setdefault(_s(t.get("label")), t)
    labels = list(target_docs)
    for r in results:
        label = _s(r.get("target"))
        if label not in target_docs:
            target_docs[label] = {"label": label}
            labels.append(label)
    return target_docs, labels


def _add_result(rows: dict[str, dict[str, Any]], r: Mapping[str, Any], labels: list[str], used_ids: set[str],
                target_token: dict[str, str], lean: bool) -> str:
    """One result: its detail record, and its cell in the row of its scenario id; returns its anchor."""
    sid = _s(r.get("id"))
    label = _s(r.get("target"))
    outcome = _s(r.get("outcome"))
    anchor = _unique(result_anchor(label, sid), used_ids)
    row = rows.get(sid)
    if row is None:
        row = rows[sid] = {
            "id": sid,
            "row_id": _unique("s-" + sanitize_token(sid), used_ids),
            "title": _s(r.get("title")),
            "rfc": _s(r.get("rfc")),
            "section": _s(r.get("section")),
            "level": _s(r.get("level")),
            "key": fnd.order_key(r),
            "category": fnd.category(r)[1],
            "cells": [None] * len(labels),
            "details": [],
        }
    rec = _record(r, anchor, row["row_id"], target_token[label], lean)
    row["details"].append(rec)
    col = labels.index(label)
    if row["cells"][col] is None:  # a repeated (target, id) pair: the first one gets the cell
        row["cells"][col] = _NS(
            cls=rec.cls,
            outcome=outcome,
            symbol=SYMBOLS.get(outcome, "?"),
            word=WORDS.get(outcome, outcome.upper()),
            text=_cell_text(r),
            title=visible_text(_tooltip(outcome, r)),
            href="#" + anchor,
            duration=rec.duration,
        )
    return anchor


# Large reports leave the transcripts of PASS / UNSUPPORTED / SKIPPED out of the page (size and load time,
# docs/results-format.md); the results JSON keeps them, and every result has its reproduce command.
_LEAN_NOTE = ("transcript left out of this page: a report of more than {n} results shows only non-passing "
              "transcripts (all are in the results JSON)")


def _record(r: Mapping[str, Any], anchor: str, row_id: str, target_token: str, lean: bool) -> _NS:
    outcome = _s(r.get("outcome"))
    keep = not lean or outcome not in ("pass", "unsupported", "skipped")
    failure = Failure.of({**r, "transcript": []})
    return _NS(
        anchor=anchor,
        row_id=row_id,
        id=_s(r.get("id")),
        title=_s(r.get("title")),
        target=_s(r.get("target")),
        target_token=target_token,
        outcome=outcome,
        cls=_outcome_token(outcome),
        level=_s(r.get("level")),
        rfc=_s(r.get("rfc")),
        section=_s(r.get("section")),
        result=r,  # the scenario's own text (quote, requirements …) is worded once, for its group
        reproduce=_s(r.get("reproduce")),
        duration=_fmt_seconds(r.get("duration_s")),
        message=wire_markup(r.get("message")),
        cause=_s(failure.cause),
        cause_note=failure.cause_note,
        branch=_s(r.get("branch")),
        step=_step(r.get("step"), failure),
        codes=", ".join(_NO_CODE if c is None else str(c) if c.__class__ is int else _s(c)
                        for c in _list(r.get("codes"))),  # 1001 codes in a result of the RCPT-limit scenarios
        decisive_code=_s(r.get("decisive_code")),
        connection=_s(r.get("connection")),
        findings=[_s(x) for x in _list(r.get("findings"))],
        transcript=_transcript(_list(r.get("transcript"))) if keep else [],
        transcript_note="" if keep or not r.get("transcript") else _LEAN_NOTE.format(n=LEAN_REPORT_RESULTS),
        reply=_reply_line(r),
    )


def _body(rows: dict[str, dict[str, Any]], labels: list[str]) -> tuple[list[_NS], list[_NS], list[_NS], list[_NS]]:
    """Matrix rows (RFC 5321 core first, then extensions by RFC number, then security; sections in natural
    order, then first appearance) with group headers; the details grouped by scenario; the differences."""
    body: list[_NS] = []
    details: list[_NS] = []
    groups: list[_NS] = []
    differences: list[_NS] = []
    current_rfc = current_section = None
    for row in sorted(rows.values(), key=lambda row: row["key"]):
        if row["category"] != current_rfc:
            current_rfc, current_section = row["category"], None
            body.append(_NS(kind="rfc", rfc=row["rfc"], heading=row["category"]))
        if row["section"] != current_section:
            current_section = row["section"]
            body.append(_NS(kind="section", rfc=row["rfc"], section=row["section"]))
        present = [c.cls if c else "none" for c in row["cells"]]
        row["same"] = "1" if present and len(set(present)) == 1 else "0"
        row["outcomes"] = " ".join(sorted(set(present)))
        row["kind"] = "row"
        for i, cell in enumerate(row["cells"]):
            if cell is None:
                row["cells"][i] = _NS(cls="none", outcome="", symbol="", word="", text="",
                                      title=f"not run against {labels[i]}", href="", duration="")
        body.append(_NS(**row))
        items = sorted(row["details"], key=lambda d: labels.index(d.target))
        details.extend(items)
        groups.append(_detail_group(row, items))
        if row["same"] == "0" and len(labels) > 1:
            differences.append(_difference(row, labels))
    return body, details, groups, differences


def _detail_group(row: dict[str, Any], items: list[_NS]) -> _NS:
    """A scenario's text (quote, requirements, tags, file) once, above its per-target results."""
    first, r = items[0], items[0].result
    return _NS(row_id=row["row_id"], id=row["id"], title=row["title"], level=first.level, rfc=first.rfc,
               section=first.section, quote=_s(r.get("quote")),
               requirements=[_s(x) for x in _list(r.get("requirements"))], tags=[_s(x) for x in _list(r.get("tags"))],
               file=_s(r.get("file")), line=_s(r.get("line")), items=items)


def _target_card(label: str, t: Mapping[str, Any], token: str, counts: dict[str, int],
                 result_profile: str = "", would_add: Any = None) -> dict[str, Any]:
    return {
        "label": label,
        "token": token,
        "kind": _s(t.get("kind")),
        "address": _s(t.get("address")),
        "spec": _s(t.get("spec")),
        "banner": _s(t.get("banner")),
        "profile": _s(t.get("profile") or _dict(t.get("params")).get("profile") or result_profile),
        "would_add": _kv(would_add),  # profile-dependent scenarios a declared profile would have run
        "identity": _identity_line(_dict(t.get("details")), _s(t.get("spec"))),
        "ehlo": [_s(k) for k in _list(t.get("ehlo_keywords"))],
        "tls": _s(t.get("tls")),
        "params": _kv(t.get("params")),
        "details": _kv(t.get("details")),
        "error": _s(t.get("error")),
        "logs": [(k, v) for k, v in _kv(t.get("logs")) if v],
        "counts": _count_list(counts),
        "total": sum(counts.values()),
    }


def _run_info(run: Mapping[str, Any]) -> dict[str, str]:
    argv = run.get("argv")
    if isinstance(argv, list | tuple):
        argv = " ".join(_s(a) for a in argv)
    return {
        "started": _s(run.get("started")),
        "finished": _s(run.get("finished")),
        "duration": _fmt_seconds(run.get("duration_s"), 2),
        "argv": _s(argv),
        "strict": "yes" if run.get("strict") else "no",
        "interrupted": "yes" if run.get("interrupted") else "",
    }


def _difference(row: dict[str, Any], labels: list[str]) -> _NS:
    """A differing scenario in the comparison view: each target's outcome and reply line, side by side."""
    by_target: dict[str, Any] = {}
    for d in row["details"]:
        by_target.setdefault(d.target, d)
    cells = []
    for label in labels:
        d = by_target.get(label)
        if d is None:
            cells.append(_NS(cls="none", symbol="", word="not run", reply=Markup(""), href=""))
        else:
            cells.append(_NS(cls=d.cls, symbol=SYMBOLS.get(d.outcome, "?"), word=WORDS.get(d.outcome, d.outcome),
                             reply=wire_markup(d.reply), href="#" + d.anchor))
    return _NS(id=row["id"], title=row["title"], row_id=row["row_id"], rfc=row["rfc"], section=row["section"],
               cells=cells)


def _findings_context(doc: Mapping[str, Any], labels: list[str], tokens: dict[str, str],
                      anchors: dict[int, str]) -> list[_NS]:
    """Per target: FAIL then NON-STRICT findings grouped by section, then why scenarios could not run."""
    found = fnd.findings_by_target(doc)
    blocked = fnd.blocked_by_target(doc)
    out = []
    for label in labels:
        groups: list[_NS] = []
        for f in found.get(label, []):
            key = (f.outcome, f.heading)
            if not groups or groups[-1].key != key:
                groups.append(_NS(key=key, heading=f.heading, outcome=f.outcome, items=[]))
            groups[-1].items.append(_NS(
                anchor=anchors.get(id(f.result), ""), cls=_outcome_token(f.outcome), outcome=f.outcome,
                symbol=SYMBOLS.get(f.outcome, "?"), word=WORDS.get(f.outcome, f.outcome.upper()), id=f.id,
                title=visible_markup(f.title), level=f.level, expected=visible_markup(f.expected),
                actual=wire_markup(f.actual), baselined=bool(f.result.get("baselined"))))
        items = found.get(label, [])
        out.append(_NS(label=label, token=tokens.get(label, sanitize_token(label)), groups=groups,
                       n_fail=sum(1 for f in items if f.outcome == "fail"),
                       n_non_strict=sum(1 for f in items if f.outcome == "non-strict"),
                       blocked=[_NS(reason=b.reason, count=b.count, ids=", ".join(b.ids[:30])
                                    + (" …" if len(b.ids) > 30 else "")) for b in blocked.get(label, [])]))
    return out


# --------------------------------------------------------------------------- API


def render_html(results: dict) -> str:
    """Render a results document (docs/results-format.md) as one self-contained HTML page."""
    template = _environment().get_template("report.html.j2")
    # Rendering allocates hundreds of thousands of small objects and no reference cycles; the
    # cyclic GC would rescan them over and over (roughly halves the time for 10 000 results).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return template.render(**_build_context(results))
    finally:
        if gc_was_enabled:
            gc.enable()


def write_html(results: dict, path: Path) -> None:
    """Render `results` and write the page to `path` (UTF-8), creating parent directories."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # streamed piece by piece: the page of a 30-target run never exists as one string in memory
    template = _environment().get_template("report.html.j2")
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as in render_html
    try:
        with path.open("w", encoding="utf-8") as out:
            out.writelines(template.generate(**_build_context(results)))
    finally:
        if gc_was_enabled:
            gc.enable()
