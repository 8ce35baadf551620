"""The findings-first model every report shares: order, reasons scenarios could not run, pair summaries,
and the visible rendering of server bytes."""

from __future__ import annotations

from conformance.report import findings as fnd
from conformance.report.html import visible_markup, visible_text, wire_markup
from conformance.report.markdown import render_markdown


def _r(sid: str, outcome: str, target: str = "a", **extra) -> dict:
    base = {"id": sid, "title": f"title {sid}", "target": target, "outcome": outcome, "level": "MUST",
            "rfc": "5321", "section": "4.1.4", "quote": "q", "tags": ["core", "sequencing"],
            "file": "scenarios/rfc5321/x.yaml", "line": 3, "step": None, "message": "m", "transcript": []}
    base.update(extra)
    return base


def _doc(results: list[dict], targets: list[dict] | None = None) -> dict:
    return {"targets": targets or [{"label": "a"}, {"label": "b"}], "results": results}


def test_order_core_first_then_extensions_numerically_then_security() -> None:
    results = [
        _r("sec", "pass", rfc="5321", section="4.5.2", file="scenarios/security/smuggling.yaml"),
        _r("ext-b", "pass", rfc="6531", section="3"),
        _r("ext-a", "pass", rfc="1870", section="6"),
        _r("core-10", "pass", section="4.1.1.10"),
        _r("core-9", "pass", section="4.1.1.9"),
    ]
    ordered = [r["id"] for r in sorted(results, key=fnd.order_key)]
    assert ordered == ["core-9", "core-10", "ext-a", "ext-b", "sec"]
    assert fnd.category(results[0]) == (2, "Security")


def test_findings_fail_before_non_strict_with_expected_actual_and_step_line() -> None:
    step = {"index": 2, "line": 17, "file": "scenarios/rfc5321/_fragments.yaml", "yaml": "- send: X",
            "expected": ["503", "554"], "actual": "250 OK"}
    doc = _doc([_r("ns", "non-strict", level="SHOULD", section="4.1.1"), _r("f", "fail", step=step),
                _r("p", "pass"), _r("f-b", "fail", target="b")])
    found = fnd.findings_by_target(doc)
    assert [f.id for f in found["a"]] == ["f", "ns"]
    f = found["a"][0]
    assert (f.expected, f.actual, f.file, f.line) == ("one of 503 | 554", "250 OK", step["file"], 17)
    assert (found["a"][1].file, found["a"][1].line) == ("scenarios/rfc5321/x.yaml", 3)  # no step: the scenario
    assert [f.id for f in found["b"]] == ["f-b"]


def test_blocked_reasons_from_cause_then_fields_never_message() -> None:
    target = {"label": "a", "ehlo_keywords": ["PIPELINING", "SIZE 1000"],
              "params": {"credentials": False, "mailbox": None}}
    cases = [
        (_r("c1", "unsupported", cause="unsupported-extension", message="no mailbox"), fnd.NOT_OFFERED),
        (_r("c2", "info", cause="setup-refused"), fnd.SETUP_REFUSED),
        (_r("c3", "unsupported", cause="missing-parameter", needs=["credentials"]), fnd.NO_CREDENTIALS),
        (_r("c4", "unsupported", cause="missing-parameter", needs=[]), fnd.MISSING_VALUE),
        (_r("c5", "unsupported", cause="missing-parameter", step={"expected": ["a mailbox"]}), fnd.NO_MAILBOX),
        (_r("c6", "error", cause="no-greeting"), fnd.UNREACHABLE),
        (_r("c7", "info", cause="transient"), fnd.TRANSIENT),
        (_r("f1", "unsupported", requires=["AUTH"], needs=["credentials"]), fnd.NOT_OFFERED),
        (_r("f2", "unsupported", requires=["SIZE"], needs=["credentials"]), fnd.NO_CREDENTIALS),
        (_r("f3", "unsupported", needs=["mailbox"]), fnd.NO_MAILBOX),
        (_r("f4", "unsupported", step={"expected": ["a mailbox"], "actual": "x"}), fnd.NO_MAILBOX),
        (_r("f5", "unsupported", step={"expected": ["STARTTLS"], "actual": "x"}), fnd.NOT_OFFERED),
        (_r("f6", "skipped"), fnd.NOT_APPLICABLE),
        (_r("f7", "error"), fnd.HARNESS),
        (_r("j1", "info"), None),
        (_r("j2", "fail", cause="setup-refused"), None),
    ]
    for result, reason in cases:
        assert fnd.blocked_reason(result, target) == reason, result["id"]
    counted = fnd.blocked_by_target(_doc([r for r, _ in cases], [target]))["a"]
    assert [(b.reason, b.count) for b in counted][:3] == [(fnd.NO_MAILBOX, 3), (fnd.NO_CREDENTIALS, 2),
                                                          (fnd.NOT_OFFERED, 3)]


def test_pair_summary_counts_differences_by_category() -> None:
    doc = _doc([
        _r("s1", "pass", "a"), _r("s1", "fail", "b"),
        _r("s2", "pass", "a"), _r("s2", "non-strict", "b"),
        _r("s3", "pass", "a", tags=["core", "limits"]), _r("s3", "info", "b", tags=["core", "limits"]),
        _r("s4", "pass", "a"), _r("s4", "pass", "b"),
        _r("s5", "pass", "a"),
    ])
    (pair,) = fnd.pair_summaries(doc)
    assert (pair.differing, pair.compared) == (3, 4)
    assert pair.sentence() == "a differs from b on 3 of 4 scenarios: 2 sequencing, 1 limits."


def test_server_bytes_become_visible_styled_escapes() -> None:
    html = str(wire_markup('250 ok\\r\\n<script>"x"</script> \\x00\\x1b[31m \\\\r \x00 \x1b'))
    assert "\x00" not in html and "\x1b" not in html and "<script>" not in html
    assert '<i class="e">\\r\\n</i>' in html and '<i class="e">\\x00</i>' in html and '<i class="e">\\x1b</i>' in html
    assert ' \\r <i class="e">\\x00</i> <i class="e">\\x1b</i>' in html  # an escaped backslash is plain text
    assert str(visible_markup("a\x07b\nc")) == 'a<i class="e">\\x07</i>b\nc'
    assert visible_text("t\x1bx") == "t\\x1bx"


def test_markdown_cannot_be_broken_by_server_text() -> None:
    step = {"line": 4, "file": "f.yaml", "expected": ["503"], "actual": "250 a|b `x` <img src=x>"}
    markdown = render_markdown(_doc([_r("evil", "fail", step=step, title="<b>t</b> *x*")]))
    line = next(x for x in markdown.splitlines() if "`evil`" in x)
    assert "``250 a\\|b `x` <img src=x>``" in line
    assert "\\<b\\>t\\</b\\> \\*x\\*" in line


def test_terminal_and_annotations_never_carry_raw_controls() -> None:
    from conformance.report.github import annotations
    from conformance.report.terminal import summary_lines

    step = {"line": 4, "file": "f.yaml", "expected": ["503"], "actual": "250 \x1b[2J\x00ok"}
    doc = _doc([_r("evil\x1b]0;x\x07", "fail", step=step, quote="q\rz")])
    lines = summary_lines(doc, color=False) + list(annotations(doc))
    assert all(not any(ch in line for ch in "\x00\x07\x1b\r") for line in lines)
    assert any("250 \\x1b[2J\\x00ok" in line for line in lines)
    (annotation,) = [line for line in lines if line.startswith("::error")]
    assert annotation.startswith("::error file=f.yaml,line=4,title=FAIL evil")
    assert "\n" not in annotation and "q%0Dz" in annotation
