"""`smtp-conformance grade` end to end: a class of sample student servers graded with tests/grading/rubric.yaml
over the fixed scenario subset tests/grading/scenarios/ (so the expected scores do not move when the catalog
grows). Expected scores are computed here, independently of conformance/grading.py, from the rubric's
numbers and the outcome each server produces by construction.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO

HERE = Path(__file__).resolve().parent
RUBRIC = HERE / "rubric.yaml"
SCENARIOS = HERE / "scenarios"
TIMEOUT = 2.0  # per reply: hanging students cost little (and a loaded CI machine still answers in time)

# The fixed subset: scenario id -> category (first matching category of the rubric, by tag).
CATEGORY = {
    "g-basic-greeting": "basics", "g-basic-ehlo": "basics", "g-basic-helo": "basics", "g-basic-noop": "basics",
    "g-basic-quit": "basics",
    "g-seq-rcpt-before-mail": "sequencing", "g-seq-data-before-rcpt": "sequencing", "g-seq-nested-mail": "sequencing",
    "g-tx-rset-clears": "sequencing",  # tagged transaction too: the first category that selects it wins
    "g-tx-complete": "transaction", "g-tx-postmaster": "transaction", "g-tx-null-sender": "transaction",
    "g-syn-unknown-command": "syntax", "g-syn-mail-bad-path": "syntax",
    "g-should-noop-before-ehlo": "manners", "g-should-rset-before-ehlo": "manners",
    "g-info-mail-before-ehlo": "manners",
    "g-hidden-lf-dot-lf": "transparency", "g-hidden-bare-lf-command": "transparency",
}
LEVEL = {sid: "MUST" for sid in CATEGORY} | {"g-should-noop-before-ehlo": "SHOULD",
                                            "g-should-rset-before-ehlo": "SHOULD", "g-info-mail-before-ehlo": "INFO",
                                            "g-hidden-lf-dot-lf": "MUST NOT", "g-hidden-bare-lf-command": "MUST NOT"}
HIDDEN = {"g-hidden-lf-dot-lf", "g-hidden-bare-lf-command"}
CORRECT = {sid: "pass" for sid in CATEGORY} | {"g-info-mail-before-ehlo": "info"}
SEQUENCING = ["g-seq-rcpt-before-mail", "g-seq-data-before-rcpt", "g-seq-nested-mail", "g-tx-rset-clears"]
ALL_BUT_GREETING_FAIL = {sid: "fail" for sid in CATEGORY if sid != "g-basic-greeting"}


def faulty(*faults: str) -> str:
    return f"{PY} -m tests.servers.faulty --port {{port}}" + (f" --fault {','.join(faults)}" if faults else "")


def student(name: str, *args: str) -> str:
    return f"{PY} tests/grading/students/{name}.py --port {{port}}" + "".join(f" {a}" for a in args)


def _student_python() -> str:
    """Student servers run under unprivileged uids when the tests run as root: they need an interpreter
    those can execute (the project's venv may live under /root)."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() and os.access(system, os.X_OK) else sys.executable


PY = _student_python()


@dataclass
class Sample:
    label: str
    command: str
    outcomes: dict[str, str]  # scored outcome per scenario, by construction
    extra: dict[str, Any] | None = None


def samples(out: Path) -> list[Sample]:
    """The class: correct servers, servers with one fault each, and hostile ones."""
    return [
        Sample("good", faulty(), CORRECT),
        Sample("xss", faulty("xss"), CORRECT),  # hostile bytes, still conformant
        Sample("no-sequencing", faulty("no-sequencing"), CORRECT | dict.fromkeys(SEQUENCING, "fail")),
        Sample("no-postmaster", faulty("no-postmaster"), CORRECT | {"g-tx-postmaster": "fail"}),
        Sample("strict-pre-helo", faulty("strict-pre-helo"),
               CORRECT | {"g-should-noop-before-ehlo": "non-strict", "g-should-rset-before-ehlo": "non-strict"}),
        Sample("lf-ends-data", faulty("lf-ends-data"), CORRECT | {"g-hidden-lf-dot-lf": "fail"}),
        Sample("wrong-codes", faulty("wrong-codes"), CORRECT | dict.fromkeys(
            [*SEQUENCING, "g-syn-unknown-command", "g-syn-mail-bad-path"], "fail")),
        Sample("no-quit-close", faulty("no-quit-close"), CORRECT | {"g-basic-quit": "fail"}),
        Sample("no-rset-state", faulty("no-rset-state"), CORRECT | {"g-tx-rset-clears": "fail"}),
        # forks a SIGTERM-ignoring child and a daemon that leaves the process tree; the server is correct
        Sample("fork", student("fork"), CORRECT),
        # the first scenario (greeting only) is its 3rd connection: greeted, then it crashes; all else is lost
        Sample("crash", student("crash"), CORRECT | ALL_BUT_GREETING_FAIL, {"concurrency": 1}),
        # never answers after the greeting: whatever the level, no answer scores as a failure
        Sample("hang", student("hang"), CORRECT | ALL_BUT_GREETING_FAIL, {"time_limit": 4}),
        # endless multi-line replies: a malformed reply costs what the level says (SHOULD: non-strict)
        Sample("flood", student("flood"), CORRECT | ALL_BUT_GREETING_FAIL | {
            "g-should-noop-before-ehlo": "non-strict", "g-should-rset-before-ehlo": "non-strict",
            "g-info-mail-before-ehlo": "info"}),
        Sample("whoami", student("whoami", "--peek", str(out)), CORRECT | ALL_BUT_GREETING_FAIL | {
            "g-should-noop-before-ehlo": "non-strict", "g-should-rset-before-ehlo": "non-strict",
            "g-info-mail-before-ehlo": "info"}),
        Sample("whoami2", student("whoami", "--peek", str(out)), CORRECT | ALL_BUT_GREETING_FAIL | {
            "g-should-noop-before-ehlo": "non-strict", "g-should-rset-before-ehlo": "non-strict",
            "g-info-mail-before-ehlo": "info"}),
        Sample("dead", f"{PY} -c 'import sys; sys.exit(3)' {{port}}", dict.fromkeys(CATEGORY, "error")),
    ]


def expected_score(rubric: dict[str, Any], outcomes: dict[str, str]) -> tuple[float, dict[str, float]]:
    """The rubric applied by hand: equal shares within a category, category weights out of `total`."""
    credit = rubric["credit"]

    def value(outcome: str, level: str) -> float:
        entry = credit.get(outcome, 0)
        if isinstance(entry, dict):
            entry = entry.get(level, entry.get("default", 0))
        return float(entry)

    weights = {c["name"]: c["weight"] for c in rubric["categories"]}
    per_category = {}
    for name, weight in weights.items():
        ids = [sid for sid, cat in CATEGORY.items() if cat == name]
        fraction = sum(value(outcomes[sid], LEVEL[sid]) for sid in ids) / len(ids)
        per_category[name] = rubric["total"] * weight / sum(weights.values()) * fraction
    return sum(per_category.values()), per_category


# ----- the class run -------------------------------------------------------------------------------------
@dataclass
class ClassRun:
    out: Path
    code: int
    stdout: str
    stderr: str
    seconds: float
    grades: dict[str, Any]
    marker: str
    samples: list[Sample]

    def student(self, label: str) -> dict[str, Any]:
        return next(s for s in self.grades["students"] if s["label"] == label)


def _leftovers(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if " Z " in (entry / "stat").read_text().rsplit(")", 1)[1][:4]:
                continue  # a zombie is dead already
            if marker.encode() in (entry / "environ").read_bytes():
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {command}")
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def class_run(tmp_path_factory: pytest.TempPathFactory) -> ClassRun:
    tmp = tmp_path_factory.mktemp("grading")
    out = tmp / "out"
    marker = f"GRADING_TEST_MARK={uuid.uuid4().hex}"
    class_ = samples(out)
    entries = []
    for s in class_:
        # the marker rides in every student's environment, so leftovers can be found after the run
        entries.append({"label": s.label, "command": f"env {marker} {s.command}", "workdir": str(REPO),
                        **(s.extra or {})})
    students = tmp / "students.yaml"
    students.write_text(yaml.safe_dump({"targets": entries}, sort_keys=False))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "grade", "--rubric", str(RUBRIC), "--targets",
                           str(students), "--out", str(out), "--timeout", str(TIMEOUT)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GRADING_TEST_SECRET": "s3cr3t"})
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    grades = json.loads((out / "grades.json").read_text())
    return ClassRun(out, proc.returncode, proc.stdout, proc.stderr, seconds, grades, marker, class_)


def test_scores_match_the_rubric_by_construction(class_run: ClassRun) -> None:
    rubric = yaml.safe_load(RUBRIC.read_text())
    for sample in class_run.samples:
        got = class_run.student(sample.label)
        total, per_category = expected_score(rubric, sample.outcomes)
        assert got["total"] == pytest.approx(total, abs=0.01), (sample.label, got["status"], got["scenarios"])
        for name, points in per_category.items():
            assert got["categories"][name]["points"] == pytest.approx(points, abs=0.01), (sample.label, name)
    # the numbers spelled out, as a reader would compute them
    assert class_run.student("good")["total"] == 100
    assert class_run.student("no-sequencing")["total"] == 70  # loses exactly the sequencing category (30)
    assert class_run.student("no-postmaster")["total"] == pytest.approx(100 - 20 / 3, abs=0.01)
    assert class_run.student("strict-pre-helo")["total"] == pytest.approx(100 - 10 * (1 - 2 / 3), abs=0.01)
    assert class_run.student("lf-ends-data")["total"] == 95  # half of the hidden transparency category
    assert class_run.student("no-rset-state")["total"] == 92.5
    assert class_run.student("wrong-codes")["total"] == 60
    assert class_run.student("crash")["total"] == 4 and class_run.student("hang")["total"] == 4
    assert class_run.student("dead")["total"] == 0


def test_per_scenario_outcomes_are_what_each_server_does(class_run: ClassRun) -> None:
    deterministic = {"good", "xss", "no-sequencing", "no-postmaster", "strict-pre-helo", "lf-ends-data",
                     "wrong-codes", "no-quit-close", "no-rset-state", "fork", "flood", "dead"}
    for sample in class_run.samples:
        scored = {s["id"]: s["scored_as"] for s in class_run.student(sample.label)["scenarios"]}
        if sample.label in deterministic:
            assert scored == sample.outcomes, sample.label
        else:  # crash, hang, whoami: which way a lost check fails may vary (closed, refused, time limit)
            assert {k for k, v in scored.items() if v in ("pass", "info")} == \
                   {k for k, v in sample.outcomes.items() if v in ("pass", "info")}, sample.label
    crash = {s["id"]: s["outcome"] for s in class_run.student("crash")["scenarios"]}
    assert list(crash.values()).count("error") >= 10  # connection refused once it had crashed
    hang = class_run.student("hang")
    assert hang["not_run"] > 0 and "time limit" in hang["status"]
    silent = [s for s in hang["scenarios"] if s["outcome"] != s["scored_as"]]
    assert all(s["scored_as"] == "fail" for s in silent)
    dead = class_run.student("dead")
    assert "exited with status 3" in dead["status"]


def test_csv_and_student_reports_match_grades_json(class_run: ClassRun) -> None:
    names = [c["name"] for c in class_run.grades["rubric"]["categories"]]
    rows = list(csv.reader(io.StringIO((class_run.out / "grades.csv").read_text())))
    assert rows[0] == ["student", *names, "total"]
    assert [r[0] for r in rows[1:]] == sorted(s.label for s in class_run.samples)
    for row in rows[1:]:
        got = class_run.student(row[0])
        assert row[-1] == f"{got['total']:.2f}"
        assert row[1:-1] == [f"{got['categories'][n]['points']:.2f}" for n in names]
    class_page = (class_run.out / "class.html").read_text()
    ranks = [s["label"] for s in class_run.grades["students"]]
    assert ranks == sorted(ranks, key=lambda label: (-class_run.student(label)["total"], label))
    positions = [class_page.index(f'href="students/{label}.html"') for label in ranks]
    assert positions == sorted(positions)  # class.html lists students by rank, each linking to their page
    for got in class_run.grades["students"]:
        page = (class_run.out / "students" / f"{got['label']}.html").read_text()
        assert f"{got['total']:.2f} <span" in page
        for name in names:
            assert f"{name} — {got['categories'][name]['points']:.2f} / " in page
        hidden = got["hidden"]
        assert f"{hidden['checks']} hidden checks: {hidden['passed']} passed" in page
    assert sorted(p.name for p in (class_run.out / "students").iterdir()) == \
        sorted(f"{s.label}.html" for s in class_run.samples)


def test_failed_rules_are_explained_in_plain_language(class_run: ClassRun) -> None:
    page = (class_run.out / "students" / "no-sequencing.html").read_text()
    section = page[page.index('id="f-g-seq-rcpt-before-mail"'):]
    section = section[:section.index("</div>")]
    assert "RCPT TO:&lt;user@example.test&gt;" in section  # what was sent
    assert "250 2.1.5" in section  # what came back
    assert "the RFC allows 503, but your server answered" in section
    assert "the server MUST return a 503" in section  # the RFC quote
    # the scenario by its absolute path: the line works from the student's own folder
    assert f"pytest &#39;{SCENARIOS}/sequencing.yaml::g-seq-rcpt-before-mail[no-sequencing]&#39;" in section
    assert "--smtp-target &#39;no-sequencing=cmd:" in section  # the student's own command, not the wrapper
    assert "setpriv" not in page and "prlimit" not in page
    hang = (class_run.out / "students" / "hang.html").read_text()
    assert f"did not answer within {TIMEOUT:g} s" in hang
    not_run = [s for s in class_run.student("hang")["scenarios"] if s["message"].startswith("not run")]
    assert not_run
    if any(not s["hidden"] for s in not_run):
        assert "used up its time limit (4 s for all checks together)" in hang
    dead = (class_run.out / "students" / "dead.html").read_text()
    assert "exited with status 3 before listening" in dead


def test_hidden_scenarios_are_counted_not_detailed(class_run: ClassRun) -> None:
    titles = ["&lt;LF&gt;.&lt;LF&gt; inside the data", "<LF>.<LF> inside the data",
              "bare LF is not executed", "before\\n.\\nafter", "NOOP\\nNOOP"]
    for sample in class_run.samples:
        page = (class_run.out / "students" / f"{sample.label}.html").read_text()
        for sid in HIDDEN:
            assert sid not in page, (sample.label, sid)
        for text in titles:
            assert text not in page, (sample.label, text)
    assert "2 hidden checks: 1 passed" in (class_run.out / "students" / "lf-ends-data.html").read_text()
    assert "2 hidden checks: 2 passed" in (class_run.out / "students" / "good.html").read_text()
    # the teacher sees them
    assert all(sid in (class_run.out / "class.html").read_text() for sid in HIDDEN)
    lf = {s["id"]: s for s in class_run.student("lf-ends-data")["scenarios"]}
    assert lf["g-hidden-lf-dot-lf"]["hidden"] and lf["g-hidden-lf-dot-lf"]["outcome"] == "fail"


def test_server_bytes_are_escaped(class_run: ClassRun) -> None:
    page = (class_run.out / "students" / "xss.html").read_text()
    assert "&lt;script&gt;alert(" in page
    assert '<script>alert("x")</script>' not in page
    assert "<script" not in page and "<script" not in (class_run.out / "class.html").read_text()


def test_hostile_class_finishes_in_bounded_time_and_leaves_no_process(class_run: ClassRun) -> None:
    # hang: 4 s time limit; fork: 3 s SIGTERM grace; the rest is quick: far below the sum of the limits
    assert class_run.seconds < 60, class_run.seconds
    assert _leftovers(class_run.marker) == []


def test_results_are_written_only_after_the_run_and_students_are_isolated(class_run: ClassRun) -> None:
    banners = {s["label"]: s["banner"] for s in class_run.grades["students"] if s["label"].startswith("whoami")}
    facts = {label: dict(re.findall(r"(\w+)=(\S+?)(?:\\r|\s|$)", banner)) for label, banner in banners.items()}
    for label, f in facts.items():
        # --out is written after the run, when students are gone (and with per-student uids, the grader's
        # private folders are closed to them anyway)
        assert f["out"] in ("missing", "denied"), (label, f)
        if os.geteuid() != 0:
            assert f["out"] == "missing"
    isolation = class_run.grades["run"]["isolation"]
    if os.geteuid() != 0:
        pytest.skip(f"not root: no per-student uids ({isolation})")
    one, two = facts["whoami"], facts["whoami2"]
    assert one["uid"] != two["uid"] and "0" not in (one["uid"], two["uid"])
    assert one["groups"] in ("-", one["gid"]) and one["gid"] == one["uid"]
    assert one["secret"] == "-"  # the grader's environment is not passed on
    assert one["homes"] == "denied" and one["home"] == "readable"  # its own HOME, nobody else's
    assert "own uid" in isolation


def test_out_folder_is_private(class_run: ClassRun) -> None:
    assert (class_run.out.stat().st_mode & 0o077) == 0
    assert ((class_run.out / "students").stat().st_mode & 0o077) == 0


# ----- configuration errors: file:line: problem, exit 2 ----------------------------------------------------
def _grade(tmp_path: Path, rubric: str, students: str | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rubric.yaml").write_text(rubric)
    (tmp_path / "students.yaml").write_text(students or f"targets:\n  - label: a\n    command: {faulty()}\n")
    return subprocess.run([sys.executable, "-m", "conformance.cli", "grade", "--rubric", str(tmp_path / "rubric.yaml"),
                           "--targets", str(tmp_path / "students.yaml"), "--out", str(tmp_path / "out"),
                           "--scenarios", str(SCENARIOS)], cwd=REPO, capture_output=True, text=True, timeout=60)


GOOD_RUBRIC = """\
categories:
  - name: all
    weight: 1
    select: [{tag: basics}]
"""


@pytest.mark.parametrize(("rubric", "line", "words"), [
    ("categories:\n  - name: a\n    weight: 1\n    select: [{tag: basics}]\n    credit:\n      pass: 1.5\n",
     6, "1.5"),
    ("title: x\ncategories:\n  - name: a\n    weight: 0\n    select: [{tag: basics}]\n", 4, "0"),
    ("categories:\n  - name: a\n    weight: 1\n    select: [{tga: basics}]\n", 4, "tga"),
    ("categories:\n  - name: a\n    weight: 1\n    select: [{tag: basics}]\n  - name: A\n    weight: 1\n"
     "    select: [{tag: syntax}]\n", 5, "duplicate category"),
    ("categories:\n  - name: a\n    weight: 1\n    select: [{tag: basics}]\n  - name: b\n    weight: 1\n"
     "    select: [{tag: nosuchtag}]\n", 5, "selects no scenario"),
    ("categories:\n  - name: a\n    weight: 1\n    select: [{level: MUSTY}]\n", 4, "MUSTY"),
    ("categories: [\n", 2, "YAML"),
])
def test_rubric_mistakes_are_reported_with_their_line(tmp_path: Path, rubric: str, line: int, words: str) -> None:
    proc = _grade(tmp_path, rubric)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert re.match(rf"^{re.escape(str(tmp_path / 'rubric.yaml'))}:{line}: ", first), proc.stderr
    assert words in first, first
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("students", "line", "words"), [
    ("targets:\n  - command: python3 s.py {port}\n", 2, "needs a label"),
    ("targets:\n  - label: a/b\n    command: python3 s.py {port}\n", 2, "must be letters"),
    ("targets:\n  - label: a\n    command: python3 s.py\n", 3, "port"),
    ("targets:\n  - label: a\n    command: x {port}\n    time_limit: -1\n", 4, "-1"),
])
def test_students_file_mistakes_are_reported_with_their_line(tmp_path: Path, students: str, line: int,
                                                              words: str) -> None:
    proc = _grade(tmp_path, GOOD_RUBRIC, students)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith(f"{tmp_path / 'students.yaml'}:{line}: "), proc.stderr
    assert words in first, first


# ----- scoring rules, without servers ------------------------------------------------------------------------
def _plan(rubric_text: str, tmp_path: Path) -> Any:
    from conformance.grading import load_rubric, make_plan
    from conformance.loader import Loader, load_requirement_ids

    path = tmp_path / "r.yaml"
    path.write_text(rubric_text)
    rubric, problems = load_rubric(path)
    assert not problems, problems
    catalog = Loader(load_requirement_ids()).load_paths([SCENARIOS])
    plan, problems, _ = make_plan(rubric, catalog.scenarios)
    assert not problems
    return plan


def _score(plan: Any, outcomes: dict[str, str], messages: dict[str, str] | None = None,
           causes: dict[str, str] | None = None) -> dict[str, Any]:
    from conformance.grading import Student, score_students

    results = [{"id": sid, "target": "s", "outcome": outcomes.get(sid, "pass"),
                "message": (messages or {}).get(sid, ""), "cause": (causes or {}).get(sid)} for sid in plan.scenarios]
    document = {"results": results, "targets": [{"label": "s", "error": None}]}
    return score_students(plan, [Student("s", {"address": "127.0.0.1:1"}, 1, "address")], document, "")[0]


def test_excluded_outcomes_leave_the_denominator_and_empty_categories_give_their_weight_away(tmp_path: Path) -> None:
    plan = _plan("total: 50\ncategories:\n  - {name: basics, weight: 3, select: [{tag: basics}]}\n"
                 "  - {name: syntax, weight: 1, select: [{tag: syntax}]}\n", tmp_path)
    record = _score(plan, {"g-basic-quit": "unsupported", "g-basic-noop": "fail"})
    assert record["categories"]["basics"]["possible"] == 4 and record["categories"]["basics"]["excluded"] == 1
    assert record["total"] == pytest.approx(50 * 3 / 4 * 3 / 4 + 50 / 4)
    # every syntax check unsupported: syntax does not apply, basics carries the whole 50 points
    record = _score(plan, {"g-syn-unknown-command": "unsupported", "g-syn-mail-bad-path": "unsupported"})
    assert record["categories"]["syntax"]["points"] is None
    assert record["total"] == pytest.approx(50) and record["categories"]["basics"]["max"] == pytest.approx(50)


def test_credit_per_outcome_and_level(tmp_path: Path) -> None:
    plan = _plan("credit:\n  non-strict: {SHOULD: 0.5, default: 0.25}\n  unsupported: 0\n"
                 "categories:\n  - name: manners\n    weight: 1\n    select: [{tag: manners}]\n"
                 "    credit: {info: 0.5}\n", tmp_path)
    record = _score(plan, {"g-should-noop-before-ehlo": "non-strict", "g-should-rset-before-ehlo": "unsupported",
                           "g-info-mail-before-ehlo": "info"})
    assert record["total"] == pytest.approx(100 * (0.5 + 0 + 0.5) / 3)
    plan = _plan("credit: {non-strict: {SHOULD: 0.5, default: 0.25}}\n"
                 "categories: [{name: b, weight: 1, select: [{id: 'g-basic-*', level: MUST}]}]\n", tmp_path)
    assert _score(plan, {"g-basic-ehlo": "non-strict"})["total"] == pytest.approx(100 * 4.25 / 5)


def test_no_answer_scores_as_fail_unless_the_rubric_keeps_the_outcome(tmp_path: Path) -> None:
    silent = {"g-should-noop-before-ehlo": "Expected: 250 / Actual: no complete reply before the timeout"}
    cause = {"g-should-noop-before-ehlo": "timeout"}  # what the engine records with that message
    rubric = "categories: [{name: m, weight: 1, select: [{tag: manners}]}]\n"
    record = _score(_plan(rubric, tmp_path), {"g-should-noop-before-ehlo": "non-strict"}, silent, cause)
    assert record["total"] == pytest.approx(100 * 2 / 3)
    record = _score(_plan("no_answer: outcome\n" + rubric, tmp_path), {"g-should-noop-before-ehlo": "non-strict"},
                    silent, cause)
    assert record["total"] == pytest.approx(100 * 2.5 / 3)


def test_selectors(tmp_path: Path) -> None:
    plan = _plan("categories:\n"
                 "  - {name: a, weight: 1, select: [{section: 4.1, level: [SHOULD, INFO]}]}\n"
                 "  - {name: b, weight: 1, select: [{rfc: 5321, id: 'g-syn-*'}], exclude: [{id: '*-bad-path'}]}\n"
                 "hidden: [{id: g-syn-unknown-command}]\n", tmp_path)
    assert plan.members == {"a": ["g-should-noop-before-ehlo", "g-should-rset-before-ehlo", "g-info-mail-before-ehlo"],
                            "b": ["g-syn-unknown-command"]}
    assert plan.hidden == {"g-syn-unknown-command"}


def test_without_uid_isolation_leftovers_are_found_by_the_run_token(tmp_path: Path) -> None:
    """--isolation none (what a non-root teacher gets): processes that escaped the tree are still killed."""
    marker = f"GRADING_TEST_MARK={uuid.uuid4().hex}"
    students = tmp_path / "students.yaml"
    students.write_text(yaml.safe_dump({"targets": [
        {"label": "fork", "command": f"env {marker} {student('fork')}", "workdir": str(REPO)},
        {"label": "good", "command": f"env {marker} {faulty()}", "workdir": str(REPO)},
    ]}))
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "grade", "--rubric", str(RUBRIC), "--targets",
                           str(students), "--out", str(tmp_path / "out"), "--timeout", str(TIMEOUT),
                           "--isolation", "none"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    grades = json.loads((tmp_path / "out" / "grades.json").read_text())
    assert [s["total"] for s in grades["students"]] == [100, 100]
    assert grades["run"]["isolation"].startswith("none")
    assert _leftovers(marker) == []


def test_examples_are_valid_and_are_the_ones_documented(tmp_path: Path) -> None:
    from conformance.grading import load_rubric, load_students, make_plan
    from conformance.loader import Loader, default_scenario_paths, load_requirement_ids

    examples = REPO / "examples" / "grading"
    rubric, problems = load_rubric(examples / "rubric.yaml")
    assert rubric is not None and not problems, problems
    catalog = Loader(load_requirement_ids()).load_paths([REPO / p for p in default_scenario_paths()])
    plan, problems, _ = make_plan(rubric, catalog.scenarios)
    assert not problems and plan.hidden, problems
    students, problems = load_students(examples / "students.yaml")
    assert not problems and [s.label for s in students] == ["ana", "ben", "chloe", "dmitri", "reference"]
    doc = (REPO / "docs" / "grading.md").read_text()
    assert (examples / "rubric.yaml").read_text() in doc
    indented = "".join(("   " + line if line.strip() else line)
                       for line in (examples / "students.yaml").read_text().splitlines(True))
    assert indented in doc
