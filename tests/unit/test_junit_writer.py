"""JUnit XML written from results: well-formed whatever a server sent, counted as the testcases say."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from conformance.report.junit import write_junit

HOSTILE = "\x00\x1b[31m<script>alert(1)</script> ]]> & \"quoted\" \ud800 \uffff end"


def entry(outcome: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"s-{outcome}", "title": "t", "target": "x", "outcome": outcome, "level": "MUST", "rfc": "5321",
            "section": "4.2", "quote": "a quote", "file": "scenarios/a.yaml", "line": 3,
            "nodeid": f"scenarios/a.yaml::s-{outcome}[x]", "reproduce": "pytest x", "message": HOSTILE,
            "duration_s": 0.25, "transcript": [{"t": 0.0, "dir": "S", "data": HOSTILE}],
            "step": {"expected": ["250"], "actual": HOSTILE}, **extra}


def document(results: list[dict[str, Any]], strict: bool = False) -> dict[str, Any]:
    return {"run": {"strict": strict, "duration_s": 1.5, "started": "2026-12-07T00:00:00Z"}, "results": results}


def test_server_bytes_never_break_the_xml(tmp_path: Path) -> None:
    path = tmp_path / "j.xml"
    results = [entry(o) for o in ("pass", "fail", "error", "non-strict", "unsupported", "skipped", "info")]
    write_junit(document(results), path)
    root = ET.parse(path).getroot()  # raises on a control character or a stray '<'
    text = ET.tostring(root, encoding="unicode")
    assert "<script>" not in text and "\x1b" not in text and "\x00" not in text
    assert "\\x1b[31m" in text  # shown, not dropped
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("7", "2", "3")


def test_strict_and_baselined_and_modes(tmp_path: Path) -> None:
    path = tmp_path / "j.xml"
    results = [entry("non-strict"), entry("fail", id="known", nodeid="scenarios/a.yaml::known[x]", baselined=True)]
    for strict, mode, want in ((True, "skipped", "failure"), (False, "failure", "failure"),
                               (False, "skipped", "skipped"), (False, "pass", None)):
        write_junit(document(results, strict), path, mode)
        cases = {c.get("name"): c for c in ET.parse(path).getroot().iter("testcase")}
        non_strict = cases["s-non-strict[x]"]
        got = next((child.tag for child in non_strict if child.tag in ("failure", "skipped")), None)
        assert got == want, (strict, mode)
        assert [child.tag for child in cases["known[x]"]] == ["properties"]  # baselined: passes, as in pytest


def test_full_entries_are_read_only_for_reported_testcases(tmp_path: Path) -> None:
    asked: list[str] = []

    def full(r: dict[str, Any]) -> dict[str, Any]:
        asked.append(r["outcome"])
        return {**r, "transcript": [{"t": 0.0, "dir": "S", "data": "the whole transcript"}]}

    results = [entry(o) for o in ("pass", "fail", "non-strict", "unsupported")]
    write_junit(document(results), tmp_path / "j.xml", "skipped", full)
    assert sorted(asked) == ["fail", "non-strict"]
    assert (tmp_path / "j.xml").read_text().count("the whole transcript") == 2
