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
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace as _NS
from typing import Any

from ..failure import Failure, transcript_rows
from .common import environment as _environment

__all__ = ["OUTCOMES", "render_html", "write_html", "sanitize_token", "result_anchor"]

# Display order of the outcome classes (docs/results-format.md, "Outcomes").
OUTCOMES: tuple[str, ...] = ("pass", "fail", "non-strict", "info", "unsupported", "skipped", "error")

# Cell text when a result has no decisive reply code.
_MARKERS = {"timeout": "T/O", "reset": "RST"}
_NO_CODE = "\u2014"  # em dash
_TOOLTIP_MAX = 400

_TOKEN_RE = re.compile(r"[^A-Za-z0-9_-]")


# --------------------------------------------------------------------------- helpers


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


def _s(value: Any) -> str:
    """A value as display text: None → "", containers → compact JSON, others → str()."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


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
    rows, _ = transcript_rows(entry if isinstance(entry, Mapping) else {} for entry in entries)
    return [_NS(cls=_SIDE_CLASS[row.side], text=f"{row.t} {row.arrow} {row.label.ljust(2)} {row.data}") for row in rows]


def _step(step: Any, failure: Failure) -> _NS | None:
    if not isinstance(step, Mapping):
        return None
    return _NS(
        index=_s(step.get("index")),
        line=_s(step.get("line")),
        yaml=failure.yaml.rstrip("\n"),
        expected=failure.expected,
        actual=failure.actual,
    )


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
    for r in results:
        outcome = _s(r.get("outcome"))
        _count(total_counts, outcome)
        _count(target_counts[_s(r.get("target"))], outcome)
        _add_result(rows, r, labels, used_ids)
    body, details = _body(rows, labels)
    targets = [_target_card(label, target_docs[label], target_token[label], target_counts[label]) for label in labels]
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


def _add_result(rows: dict[str, dict[str, Any]], r: Mapping[str, Any], labels: list[str], used_ids: set[str]) -> None:
    """One result: its detail record, and its cell in the row of its scenario id."""
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
            "cells": [None] * len(labels),
            "details": [],
        }
    rec = _record(r, anchor, row["row_id"])
    row["details"].append(rec)
    col = labels.index(label)
    if row["cells"][col] is None:  # a repeated (target, id) pair: the first one gets the cell
        row["cells"][col] = _NS(
            cls=rec.cls,
            outcome=outcome,
            text=_cell_text(r),
            title=_tooltip(outcome, r),
            href="#" + anchor,
            duration=rec.duration,
        )


def _record(r: Mapping[str, Any], anchor: str, row_id: str) -> _NS:
    outcome = _s(r.get("outcome"))
    failure = Failure.of({**r, "transcript": []})
    return _NS(
        anchor=anchor,
        row_id=row_id,
        id=_s(r.get("id")),
        title=_s(r.get("title")),
        target=_s(r.get("target")),
        outcome=outcome,
        cls=_outcome_token(outcome),
        level=_s(r.get("level")),
        rfc=_s(r.get("rfc")),
        section=_s(r.get("section")),
        quote=_s(r.get("quote")),
        requirements=[_s(x) for x in _list(r.get("requirements"))],
        tags=[_s(x) for x in _list(r.get("tags"))],
        file=_s(r.get("file")),
        line=_s(r.get("line")),
        nodeid=_s(r.get("nodeid")),
        reproduce=_s(r.get("reproduce")),
        duration=_fmt_seconds(r.get("duration_s")),
        message=_s(r.get("message")),
        cause=_s(failure.cause),
        cause_note=failure.cause_note,
        branch=_s(r.get("branch")),
        step=_step(r.get("step"), failure),
        codes=", ".join(_NO_CODE if c is None else _s(c) for c in _list(r.get("codes"))),
        decisive_code=_s(r.get("decisive_code")),
        connection=_s(r.get("connection")),
        findings=[_s(x) for x in _list(r.get("findings"))],
        transcript=_transcript(_list(r.get("transcript"))),
    )


def _body(rows: dict[str, dict[str, Any]], labels: list[str]) -> tuple[list[_NS], list[_NS]]:
    """Rows ordered by RFC, then section (natural order), then first appearance; group headers.
    (The matrix keeps RFCs in plain numeric order, as tests/unit/test_html_report.py pins it.)"""
    ordered = sorted(rows.values(), key=lambda row: (_natural_key(row["rfc"]), _natural_key(row["section"])))
    body: list[_NS] = []
    details: list[_NS] = []
    current_rfc = current_section = None
    for row in ordered:
        if row["rfc"] != current_rfc:
            current_rfc, current_section = row["rfc"], None
            body.append(_NS(kind="rfc", rfc=row["rfc"]))
        if row["section"] != current_section:
            current_section = row["section"]
            body.append(_NS(kind="section", rfc=row["rfc"], section=row["section"]))
        present = [c.cls if c else "none" for c in row["cells"]]
        row["same"] = "1" if present and len(set(present)) == 1 else "0"
        row["outcomes"] = " ".join(sorted(set(present)))
        row["kind"] = "row"
        for i, cell in enumerate(row["cells"]):
            if cell is None:
                row["cells"][i] = _NS(
                    cls="none",
                    outcome="",
                    text="",
                    title=f"not run against {labels[i]}",
                    href="",
                    duration="",
                )
        body.append(_NS(**row))
        details.extend(sorted(row["details"], key=lambda d: labels.index(d.target)))
    return body, details


def _target_card(label: str, t: Mapping[str, Any], token: str, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "label": label,
        "token": token,
        "kind": _s(t.get("kind")),
        "address": _s(t.get("address")),
        "spec": _s(t.get("spec")),
        "banner": _s(t.get("banner")),
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
    }


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
