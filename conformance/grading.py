"""Grading a class: every student's SMTP server against a rubric, one suite run for the whole class.

`smtp-conformance grade --rubric rubric.yaml --targets students.yaml` (docs/grading.md):

1. the rubric (conformance/schema/rubric.schema.json) and the students file (a targets file) are validated
   with line numbers; the scenarios the rubric's categories select are planned;
2. one pytest run (a subprocess) plays those scenarios against all students at once, with a generated
   targets file: per-student time limit and concurrency, and — when we are root — every command wrapped to
   run under its own unprivileged uid with resource limits (see `Isolation`);
3. after the run, every process a student left behind is killed (by uid, and by a run token in the
   environment), and only then are the reports written into `--out`: class.html, grades.csv, grades.json,
   students/<label>.html, results.json.

This module is also a small pytest plugin, loaded only by that run (`-p conformance.grading`):
`--smtp-grading-select FILE` keeps only the scenario ids listed in FILE (scenarios no category scores
neither run nor use up a student's time limit); it starts all students at once instead of a CPU-sized
handful at a time, and stops them all at once at the end instead of one after another.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fnmatch
import io
import json
import math
import os
import pwd
import random
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

from .loader import Problem

OUTCOMES = ("pass", "fail", "non-strict", "info", "unsupported", "skipped", "error")
LEVELS = ("MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY", "INFO")
EXCLUDE = "exclude"
DEFAULT_CREDIT: dict[str, float | str] = {
    "pass": 1.0, "fail": 0.0, "non-strict": 0.5, "info": 1.0, "unsupported": EXCLUDE, "skipped": EXCLUDE,
    "error": 0.0,
}
DEFAULT_TOTAL = 100.0
DEFAULT_TIME_LIMIT = 120.0
DEFAULT_STARTUP = 15.0
NOT_RUN = "not run: the target's time limit"
LABEL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
TOKEN_VAR = "SMTPC_GRADING_RUN"
GRADES_FORMAT = 1

# resource limits for isolated student commands (prlimit): processes+threads per student uid, size of any
# file written (stdout/stderr logs included), no core dumps, open files; CPU seconds are set per student.
LIMIT_NPROC = 256
LIMIT_FSIZE = 64 * 1024 * 1024
LIMIT_NOFILE = 1024
UID_RANGE = (1_000_000, 2_000_000)


# ============================================================================ rubric
@dataclass(frozen=True)
class Selector:
    """Scenario selector: every key given must match; several values under one key: any of them."""

    tags: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    rfcs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()

    def matches(self, s: Any) -> bool:
        """`s`: a Scenario, or anything with id, tags, rfc, section and level (level may be an enum)."""
        level = getattr(s.level, "value", s.level)
        if self.tags and not set(self.tags) & set(s.tags):
            return False
        if self.ids and not any(fnmatch.fnmatchcase(s.id, p) for p in self.ids):
            return False
        if self.rfcs and str(s.rfc) not in self.rfcs:
            return False
        if self.levels and level not in self.levels:
            return False
        return not (self.sections and not any(_section_matches(p, str(s.section)) for p in self.sections))

    def describe(self) -> str:
        parts = []
        for key, values in (("tag", self.tags), ("id", self.ids), ("rfc", self.rfcs), ("section", self.sections),
                            ("level", self.levels)):
            if values:
                parts.append(f"{key}: {values[0] if len(values) == 1 else list(values)}")
        return "{" + ", ".join(parts) + "}"


def _section_matches(pattern: str, section: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(section, pattern)
    return section == pattern or section.startswith(pattern + ".")


@dataclass(frozen=True)
class Credit:
    """outcome -> {level or 'default': fraction or EXCLUDE}."""

    table: Mapping[str, Mapping[str, float | str]]

    def value(self, outcome: str, level: str) -> float | None:
        """The fraction earned, or None: excluded from the denominator."""
        entry = self.table.get(outcome, {"default": 0.0})
        value = entry.get(level, entry.get("default", DEFAULT_CREDIT.get(outcome, 0.0)))
        return None if value == EXCLUDE else float(value)

    def merged(self, override: Mapping[str, Any] | None) -> Credit:
        if not override:
            return self
        table = dict(self.table)
        for outcome, entry in override.items():
            table[outcome] = _credit_entry(entry)
        return Credit(table)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for outcome in OUTCOMES:
            entry = self.table.get(outcome, {})
            out[outcome] = entry["default"] if set(entry) == {"default"} else dict(entry)
        return out


def _credit_entry(entry: Any) -> dict[str, float | str]:
    return dict(entry) if isinstance(entry, Mapping) else {"default": entry}


def default_credit() -> Credit:
    return Credit({o: {"default": v} for o, v in DEFAULT_CREDIT.items()})


@dataclass
class Category:
    name: str
    weight: float
    select: list[Selector]
    exclude: list[Selector]
    credit: Credit
    line: int
    description: str = ""

    def wants(self, scenario: Any) -> bool:
        return any(s.matches(scenario) for s in self.select) and not any(s.matches(scenario) for s in self.exclude)


@dataclass
class Rubric:
    file: str
    title: str
    total: float
    time_limit: float
    startup_timeout: float
    scenario_paths: list[Path]
    credit: Credit
    categories: list[Category]
    hidden: list[Selector]
    hidden_line: int = 0
    no_answer: str = "fail"

    @property
    def weight_sum(self) -> float:
        return sum(c.weight for c in self.categories)

    def nominal_max(self, category: Category) -> float:
        return self.total * category.weight / self.weight_sum


def _rubric_schema() -> dict[str, Any]:
    return json.loads(resources.files("conformance").joinpath("schema/rubric.schema.json").read_text())


def load_rubric(path: Path) -> tuple[Rubric | None, list[Problem]]:
    """The rubric, or the problems found in it (`file:line: problem` each)."""
    import jsonschema

    from .loader import schema_problems
    from .yamlload import YamlError, load_documents

    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(name, 0, f"cannot read rubric: {exc}")]
    try:
        docs = load_documents(text)
    except YamlError as exc:
        return None, [Problem(name, exc.line, exc.message)]
    if len(docs) != 1:
        return None, [Problem(name, 1, "a rubric file holds exactly one YAML document")]
    doc = docs[0]
    problems = schema_problems(jsonschema.Draft202012Validator(_rubric_schema()), doc, name)
    if problems:
        return None, problems
    data = doc.data

    def strings(value: Any, at: tuple[str | int, ...]) -> tuple[str, ...]:
        # numbers keep their source spelling: section 4.10 is not the float 4.1
        if isinstance(value, list):
            return tuple(doc.scalar_text.get(at + (i,), str(v)) for i, v in enumerate(value))
        return (doc.scalar_text.get(at, str(value)),)

    def selector(entry: Mapping[str, Any], at: tuple[str | int, ...]) -> Selector:
        def get(key: str) -> tuple[str, ...]:
            return strings(entry[key], at + (key,)) if key in entry else ()

        return Selector(tags=get("tag"), ids=get("id"), rfcs=get("rfc"), sections=get("section"),
                        levels=get("level"))

    base = default_credit().merged(data.get("credit"))
    categories: list[Category] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(data["categories"]):
        at: tuple[str | int, ...] = ("categories", i)
        line = doc.line(at)
        cat_name = str(entry["name"]).strip()
        if cat_name.lower() in seen:
            problems.append(Problem(name, doc.line(at + ("name",)),
                                    f"duplicate category name '{cat_name}' (first at line {seen[cat_name.lower()]})"))
            continue
        if cat_name.lower() in ("student", "total"):
            problems.append(Problem(name, doc.line(at + ("name",)),
                                    f"category name '{cat_name}' is taken by a grades.csv column"))
            continue
        seen[cat_name.lower()] = line
        categories.append(Category(
            name=cat_name, weight=float(entry["weight"]),
            select=[selector(s, at + ("select", j)) for j, s in enumerate(entry["select"])],
            exclude=[selector(s, at + ("exclude", j)) for j, s in enumerate(entry.get("exclude", []))],
            credit=base.merged(entry.get("credit")), line=line, description=str(entry.get("description", "")),
        ))
    raw_paths = data.get("scenarios", [])
    raw_paths = [raw_paths] if isinstance(raw_paths, str) else raw_paths
    rubric = Rubric(
        file=name, title=str(data.get("title", "SMTP server grades")),
        total=float(data.get("total", DEFAULT_TOTAL)),
        time_limit=float(data.get("time_limit", DEFAULT_TIME_LIMIT)),
        startup_timeout=float(data.get("startup_timeout", DEFAULT_STARTUP)),
        scenario_paths=[(path.parent / p) for p in raw_paths],
        credit=base, categories=categories,
        hidden=[selector(s, ("hidden", j)) for j, s in enumerate(data.get("hidden", []))],
        hidden_line=doc.line(("hidden",)) if "hidden" in data else 0,
        no_answer=str(data.get("no_answer", "fail")),
    )
    return (None if problems else rubric), problems


# ============================================================================ plan: scenarios per category
@dataclass
class Plan:
    rubric: Rubric
    scenarios: dict[str, Any]  # id -> Scenario, in catalog order, only the scored ones
    category_of: dict[str, str]
    hidden: set[str]
    members: dict[str, list[str]]  # category -> scenario ids

    @property
    def files(self) -> list[str]:
        return list(dict.fromkeys(s.file for s in self.scenarios.values()))


def make_plan(rubric: Rubric, scenarios: list[Any]) -> tuple[Plan, list[Problem], list[str]]:
    """Each scenario goes to the first category (in rubric order) that selects it."""
    problems: list[Problem] = []
    warnings: list[str] = []
    chosen: dict[str, Any] = {}
    category_of: dict[str, str] = {}
    members: dict[str, list[str]] = {c.name: [] for c in rubric.categories}
    for s in scenarios:
        for cat in rubric.categories:
            if cat.wants(s):
                chosen[s.id] = s
                category_of[s.id] = cat.name
                members[cat.name].append(s.id)
                break
    for cat in rubric.categories:
        if not members[cat.name]:
            problems.append(Problem(rubric.file, cat.line,
                                    f"category '{cat.name}' selects no scenario (of {len(scenarios)} loaded) that an "
                                    "earlier category did not take"))
    hidden = {sid for sid, s in chosen.items() if any(h.matches(s) for h in rubric.hidden)}
    for h in rubric.hidden:
        if not any(h.matches(s) for s in chosen.values()):
            warnings.append(f"{rubric.file}:{rubric.hidden_line}: hidden selector {h.describe()} matches no scored "
                            "scenario")
    for file in dict.fromkeys(s.file for s in chosen.values()):
        if "scenarios" not in Path(file).resolve().parts:
            problems.append(Problem(file, 1, "scenario files must be inside a folder named 'scenarios' (the pytest "
                                    "plugin collects only those)"))
    return Plan(rubric, chosen, category_of, hidden, members), problems, warnings


# ============================================================================ students
@dataclass
class Student:
    label: str
    entry: dict[str, Any]  # the students-file entry, as written
    line: int
    kind: str  # address, command, builtin, image

    @property
    def spec(self) -> str:
        if self.kind == "command":
            return str(self.entry["command"])
        if self.kind == "address":
            return str(self.entry["address"])
        if self.kind == "image":
            return "image:" + str(self.entry["image"])
        return "builtin"


def load_students(path: Path) -> tuple[list[Student], list[Problem]]:
    """A targets file (docs/targets.md) in which every entry has a file-name-safe label."""
    from .targets import load_targets_file
    from .yamlload import YamlError, load_documents

    _, problems = load_targets_file(path)
    if problems:
        return [], problems
    name = str(path)
    try:
        doc = load_documents(path.read_text(encoding="utf-8"))[0]
    except (OSError, UnicodeDecodeError, YamlError, IndexError) as exc:  # already checked: cannot happen
        return [], [Problem(name, 1, f"cannot read students file: {exc}")]
    students: list[Student] = []
    for i, entry in enumerate(doc.data["targets"]):
        line = doc.line(("targets", i))
        label = entry.get("label")
        if label is None:
            problems.append(Problem(name, line, "grading: every student needs a label (it names their report)"))
            continue
        label = str(label)
        if not LABEL_RE.match(label):
            problems.append(Problem(name, doc.line(("targets", i, "label")),
                                    f"grading: label '{label}' must be letters, digits, '_', '.' or '-' (it names "
                                    "the file students/<label>.html)"))
            continue
        twin = next((s for s in students if s.label.lower() == label.lower()), None)
        if twin is not None:
            problems.append(Problem(name, doc.line(("targets", i, "label")),
                                    f"grading: label '{label}' differs from '{twin.label}' (line {twin.line}) only in "
                                    "case: their report files would collide on some file systems"))
            continue
        kind = next(k for k in ("address", "command", "builtin", "image") if k in entry)
        entry = dict(entry)
        if "workdir" in entry:
            entry["workdir"] = str((path.parent / str(entry["workdir"])).resolve())
        students.append(Student(label, entry, line, kind))
    return students, problems


# ============================================================================ isolation
class IsolationError(Exception):
    pass


def _process_uids() -> dict[int, int]:
    """pid -> real uid of every live (non-zombie) process."""
    out: dict[int, int] = {}
    if not os.path.isdir("/proc"):  # not Linux: no sweeping (and no uid isolation)
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry.name}/status").read_text()
        except OSError:
            continue
        state = uid = None
        for line in status.splitlines():
            if line.startswith("State:"):
                state = line.split()[1]
            elif line.startswith("Uid:"):
                uid = int(line.split()[1])
                break
        if uid is not None and state != "Z":
            out[int(entry.name)] = uid
    return out


def _uid_is_free(uid: int, running: set[int]) -> bool:
    if uid in running:
        return False
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return True
    return False


@dataclass
class Isolation:
    """How student commands run, and how whatever they leave behind is found again.

    `uid` (needs root, setpriv and prlimit): each command student gets an unused uid of its own (no
    passwd entry needed), no supplementary groups, no capabilities, no-new-privs, a scrubbed environment
    with a private HOME/TMPDIR, and prlimit caps on processes (per uid), file size, CPU seconds, open files
    and core dumps. Students cannot signal, ptrace or read the files of each other or of the grader.
    `none`: commands run as the grader's user, unchanged.
    Either way a run token goes into their environment; after the run every process carrying the token or
    owned by a student uid is killed (daemons that escaped the process tree included).
    """

    mode: str
    token: str = field(default_factory=lambda: secrets.token_hex(12))
    uids: dict[str, int] = field(default_factory=dict)
    homes: Path | None = None

    @classmethod
    def create(cls, requested: str, students: list[Student], uid_base: int | None = None) -> tuple[Isolation, str]:
        """(isolation, a note for the teacher). Raises IsolationError when `uid` was requested but cannot be."""
        commands = [s for s in students if s.kind == "command"]
        can, why = cls._uid_possible()
        if requested == "none" or (requested == "auto" and not can) or not commands:
            note = "" if requested == "none" or not commands else f"student commands run as this user ({why})"
            return cls("none"), note
        if not can:
            raise IsolationError(f"--isolation uid: {why}")
        iso = cls("uid")
        block = iso._uid_block(len(commands), uid_base)
        iso.uids = {s.label: uid for s, uid in zip(commands, block, strict=True)}
        iso.homes = Path(tempfile.mkdtemp(prefix="smtpc-grade-homes-"))
        iso.homes.chmod(0o711)  # students may enter (to reach their own HOME) but not list it
        for label, uid in iso.uids.items():
            home = iso.homes / label
            home.mkdir(mode=0o700)
            os.chown(home, uid, uid)
        probe = subprocess.run(iso._drop(block[0]) + ["/bin/true"], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            iso.cleanup()
            why = f"setpriv could not switch to uid {block[0]}: {probe.stderr.strip()[:200]}"
            if requested == "uid":
                raise IsolationError(f"--isolation uid: {why}")
            return cls("none"), f"student commands run as this user ({why})"
        return iso, ""

    @staticmethod
    def _uid_possible() -> tuple[bool, str]:
        if not sys.platform.startswith("linux"):
            return False, "per-student uids need Linux"
        if os.geteuid() != 0:
            return False, "not root: cannot switch students to other uids"
        missing = [tool for tool in ("setpriv", "prlimit") if shutil.which(tool) is None]
        if missing:
            return False, f"{' and '.join(missing)} not installed (util-linux)"
        return True, ""

    @staticmethod
    def _uid_block(count: int, base: int | None) -> list[int]:
        running = set(_process_uids().values())
        if base is not None:
            block = list(range(base, base + count))
            taken = [u for u in block if not _uid_is_free(u, running)]
            if taken:
                raise IsolationError(f"--uid-base {base}: uid {taken[0]} has a passwd entry or running processes")
            return block
        rng = random.SystemRandom()
        for _ in range(100):
            start = rng.randrange(UID_RANGE[0], UID_RANGE[1] - count)
            block = list(range(start, start + count))
            if all(_uid_is_free(u, running) for u in block):
                return block
        raise IsolationError("no free block of uids found; give --uid-base")

    @staticmethod
    def _drop(uid: int) -> list[str]:
        return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--"]

    def wrap(self, student: Student, time_limit: float, startup: float) -> str:
        """The student's command line, as the targets file gives it to /bin/sh -c (with {port} kept)."""
        command = str(student.entry["command"])
        uid = self.uids.get(student.label)
        if self.mode != "uid" or uid is None or self.homes is None:
            return command
        home = str(self.homes / student.label)
        env = {"HOME": home, "TMPDIR": home, "PORT": "{port}", TOKEN_VAR: self.token,
               "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")}
        env.update({k: os.environ[k] for k in ("LANG", "LC_ALL", "TZ") if k in os.environ})
        cpu = int(math.ceil(time_limit + startup + 60))
        limits = ["prlimit", f"--nproc={LIMIT_NPROC}", f"--fsize={LIMIT_FSIZE}", f"--nofile={LIMIT_NOFILE}",
                  "--core=0", f"--cpu={cpu}", "--"]
        argv = [*limits, *self._drop(uid), "env", "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c"]
        return "exec " + shlex.join(argv) + " " + shlex.quote(command)

    def sweep(self) -> int:
        """SIGKILL every process owned by a student uid or carrying the run token; returns how many."""
        killed = 0
        for _ in range(50):
            victims = _marked(set(self.uids.values()), self.token)
            if not victims:
                break
            for pid in victims:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            time.sleep(0.05)
        return killed

    def cleanup(self) -> None:
        if self.homes is not None:
            shutil.rmtree(self.homes, ignore_errors=True)
            self.homes = None

    def describe(self) -> str:
        if self.mode == "uid":
            return (f"each student command under its own uid ({min(self.uids.values())}–{max(self.uids.values())}), "
                    f"no capabilities, scrubbed environment, limits: {LIMIT_NPROC} processes, "
                    f"{LIMIT_FSIZE // (1024 * 1024)} MiB per file, {LIMIT_NOFILE} open files")
        return "none: student commands run as the grading user"


# ============================================================================ the run
@dataclass
class RunOutcome:
    document: dict[str, Any] | None
    raw: bytes  # the results JSON as the suite wrote it (copied to --out as results.json)
    complete: bool
    note: str
    duration_s: float
    swept: int


def generated_targets(plan: Plan, students: list[Student], iso: Isolation, concurrency: int) -> dict[str, Any]:
    entries = []
    for s in students:
        entry = dict(s.entry)
        entry["label"] = s.label
        entry.setdefault("time_limit", plan.rubric.time_limit)
        entry.setdefault("startup_timeout", plan.rubric.startup_timeout)
        entry.setdefault("concurrency", concurrency)
        if s.kind == "command":
            entry["command"] = iso.wrap(s, float(entry["time_limit"]), float(entry["startup_timeout"]))
        entries.append(entry)
    return {"targets": entries}


def run_deadline(plan: Plan, targets: list[dict[str, Any]], timeout: float) -> float:
    """A generous bound on the whole run: it only guards against a stuck engine, never cuts a fair run."""
    local = [t for t in targets if "address" not in t]
    workers = min(32, (os.cpu_count() or 1) + 4)  # asyncio.to_thread's pool starts targets
    batches = math.ceil(len(local) / workers) if local else 0
    startup = max((float(t["startup_timeout"]) for t in targets), default=DEFAULT_STARTUP)
    longest = max((float(t["time_limit"]) for t in targets), default=DEFAULT_TIME_LIMIT)
    scenario_budget = max([timeout, *[s.timeout or 0 for s in plan.scenarios.values()]])
    return batches * (startup + 4 * timeout + 5) + longest + scenario_budget + 6 * len(targets) + 120


def run_class(plan: Plan, students: list[Student], iso: Isolation, private: Path, *, timeout: float,
              concurrency: int, verbose: bool = False) -> RunOutcome:
    """One pytest run for the whole class; returns its results document (None if it produced none)."""
    import yaml

    targets = generated_targets(plan, students, iso, concurrency)
    targets_file = private / "targets.yaml"
    targets_file.write_text(yaml.safe_dump(targets, sort_keys=False, allow_unicode=True))
    select_file = private / "select.json"
    select_file.write_text(json.dumps(sorted(plan.scenarios)))
    ini = private / "pytest.ini"
    ini.write_text("[pytest]\n")
    results = private / "results.json"
    log_path = private / "pytest.log"
    # Each student's own `concurrency` bounds its dialogues; the run-wide limit is their sum, so that every
    # student progresses at once (each dialogue is a coroutine; a slow student cannot hold the others back).
    total_slots = sum(int(t.get("concurrency") or concurrency) for t in targets["targets"])
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "conformance.grading", "--noconftest",
           "-c", str(ini), "--rootdir", str(Path.cwd()), "-q", "--tb=no", "-o", "console_output_style=classic",
           *plan.files, "--smtp-targets", str(targets_file), "--smtp-json", str(results),
           "--smtp-timeout", f"{timeout:g}", "--smtp-concurrency", str(max(1, total_slots)),
           "--smtp-grading-select", str(select_file), "--smtp-transcripts", "non-pass"]
    if verbose:
        print("grading run: " + shlex.join(cmd), file=sys.stderr)
    # PYTEST_ADDOPTS could bring -n (xdist): every worker would start its own copy of every student
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    env.update({TOKEN_VAR: iso.token, UIDS_VAR: ",".join(str(u) for u in iso.uids.values())})
    deadline = run_deadline(plan, targets["targets"], timeout)
    started = time.monotonic()
    complete, note = True, ""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            complete, note = False, f"the suite run did not finish within {deadline:.0f} s and was stopped"
            _stop_group(proc)
        except BaseException:
            _stop_group(proc)
            iso.sweep()
            raise
    swept = iso.sweep()
    duration = time.monotonic() - started
    document, raw = None, b""
    if results.exists():
        try:
            raw = results.read_bytes()
            document = json.loads(raw)
        except (OSError, ValueError) as exc:
            complete, note = False, f"unreadable results: {exc}"
    if document is None:
        complete = False
        tail = log_path.read_text(errors="replace")[-1500:] if log_path.exists() else ""
        note = note or f"the suite run (exit status {proc.returncode}) wrote no results: {tail.strip()}"
    elif proc.returncode not in (0, 1) and complete:
        complete, note = False, f"the suite run ended with status {proc.returncode}"
    if verbose:
        print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
    return RunOutcome(document, raw, complete, note, duration, swept)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the pytest process group (the plugin then stops its targets), SIGKILL after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ============================================================================ scoring
def _synthetic(scenario: Any, label: str, message: str) -> dict[str, Any]:
    return {"id": scenario.id, "title": scenario.title, "target": label, "outcome": "error",
            "level": scenario.level.value, "rfc": scenario.rfc, "section": scenario.section, "quote": scenario.quote,
            "tags": list(scenario.tags), "file": scenario.file, "line": scenario.line, "message": message,
            "step": None, "transcript": [], "reproduce": "", "nodeid": "", "codes": [], "decisive_code": None,
            "connection": "open", "findings": [], "branch": None, "duration_s": 0.0}


def score_students(plan: Plan, students: list[Student], document: dict[str, Any] | None,
                   missing_note: str) -> list[dict[str, Any]]:
    """One record per student: points per category, total, and every scored scenario's outcome and credit."""
    rubric = plan.rubric
    by_target: dict[str, dict[str, dict[str, Any]]] = {}
    identities: dict[str, dict[str, Any]] = {}
    if document is not None:
        for r in document.get("results", []):
            by_target.setdefault(r["target"], {})[r["id"]] = r
        identities = {t["label"]: t for t in document.get("targets", [])}
    records = []
    for student in students:
        results = by_target.get(student.label, {})
        identity = identities.get(student.label, {})
        cats: dict[str, dict[str, Any]] = {}
        scenarios: list[dict[str, Any]] = []
        for cat in rubric.categories:
            earned = possible = 0.0
            counts = dict.fromkeys(OUTCOMES, 0)
            excluded = 0
            for sid in plan.members[cat.name]:
                scenario = plan.scenarios[sid]
                r = results.get(sid) or _synthetic(scenario, student.label, missing_note or "no result for this "
                                                   "scenario")
                outcome = r["outcome"] if r["outcome"] in OUTCOMES else "error"
                scored = outcome
                if rubric.no_answer == "fail" and outcome in ("info", "non-strict") and unanswered(r):
                    scored = "fail"
                credit = cat.credit.value(scored, scenario.level.value)
                counts[scored] += 1
                if credit is None:
                    excluded += 1
                else:
                    earned += credit
                    possible += 1
                scenarios.append({"id": sid, "title": scenario.title, "category": cat.name,
                                  "hidden": sid in plan.hidden, "level": scenario.level.value, "outcome": outcome,
                                  "scored_as": scored, "credit": credit, "message": r.get("message", ""), "result": r})
            cats[cat.name] = {"earned": earned, "possible": possible, "excluded": excluded,
                              "fraction": (earned / possible) if possible else None, "outcomes": counts}
        applicable = sum(c.weight for c in rubric.categories if cats[c.name]["fraction"] is not None)
        total = 0.0
        for cat in rubric.categories:
            entry = cats[cat.name]
            if entry["fraction"] is None or not applicable:
                entry["points"] = entry["max"] = None
                continue
            entry["max"] = rubric.total * cat.weight / applicable
            entry["points"] = entry["max"] * entry["fraction"]
            total += entry["points"]
        hidden = [s for s in scenarios if s["hidden"] and s["credit"] is not None]
        not_run = sum(1 for s in scenarios if str(s["message"]).startswith(NOT_RUN))
        errors = sum(1 for s in scenarios if s["outcome"] == "error")
        records.append({
            "label": student.label, "kind": student.kind, "spec": student.spec, "line": student.line,
            "total": total, "max": rubric.total if applicable else 0.0,
            "categories": cats, "scenarios": scenarios,
            "hidden": {"checks": len(hidden), "passed": sum(1 for s in hidden if s["credit"] == 1.0)},
            "not_run": not_run, "errors": errors, "identity": identity,
            "status": _status(identity, not_run, errors, len(scenarios), missing_note if not results else ""),
        })
    records.sort(key=lambda r: (-round(r["total"], 6), r["label"]))
    for rank, record in enumerate(records, 1):
        record["rank"] = rank
    return records


def unanswered(result: Mapping[str, Any]) -> bool:
    """The check ended because the server did not answer in time (not because of what it answered)."""
    if result.get("cause") == "timeout":  # e.g. INFO: our timeout ran out before RFC 5321 §4.5.3.2's
        return True
    message = str(result.get("message") or "")
    return message.startswith("scenario did not finish within") or "/ Actual: no complete reply before the" in message


def _status(identity: Mapping[str, Any], not_run: int, errors: int, count: int, missing: str) -> str:
    if missing:
        return missing
    problem = str(identity.get("error") or "")
    if problem:
        return problem[:300]
    parts = []
    if not_run:
        parts.append(f"time limit reached: {not_run} of {count} checks not run")
    if errors:
        parts.append(f"{errors} checks could not run (server not reachable)")
    return "; ".join(parts) or "ok"


def _r2(value: float | None) -> float | None:
    return None if value is None else round(value + 0.0, 2)


def grades_document(plan: Plan, records: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    from . import __version__

    rubric = plan.rubric
    return {
        "format_version": GRADES_FORMAT,
        "tool": {"name": "smtp-conformance", "version": __version__},
        "rubric": {
            "file": rubric.file, "title": rubric.title, "total": rubric.total, "time_limit": rubric.time_limit,
            "no_answer": rubric.no_answer, "credit": rubric.credit.as_json(),
            "categories": [{"name": c.name, "weight": c.weight, "max_points": _r2(rubric.nominal_max(c)),
                            "credit": c.credit.as_json(), "scenarios": plan.members[c.name]}
                           for c in rubric.categories],
            "hidden": sorted(plan.hidden),
        },
        "run": run,
        "students": [{
            "label": r["label"], "rank": r["rank"], "kind": r["kind"], "spec": r["spec"],
            "total": _r2(r["total"]), "max": _r2(r["max"]), "status": r["status"],
            "categories": {name: {"points": _r2(c["points"]), "max": _r2(c["max"]),
                                  "fraction": None if c["fraction"] is None else round(c["fraction"], 4),
                                  "earned": round(c["earned"], 4), "possible": c["possible"],
                                  "excluded": c["excluded"], "outcomes": c["outcomes"]}
                           for name, c in r["categories"].items()},
            "hidden": r["hidden"], "not_run": r["not_run"], "errors": r["errors"],
            "banner": r["identity"].get("banner", ""), "error": r["identity"].get("error"),
            "scenarios": [{k: s[k] for k in ("id", "title", "category", "hidden", "level", "outcome", "scored_as",
                                             "credit", "message")} for s in r["scenarios"]],
        } for r in records],
    }


def grades_csv(plan: Plan, records: list[dict[str, Any]]) -> str:
    """student, one column per category (points; empty when not applicable), total — sorted by student."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = [c.name for c in plan.rubric.categories]
    writer.writerow(["student", *names, "total"])
    for r in sorted(records, key=lambda r: r["label"]):
        cells = [("" if r["categories"][n]["points"] is None else f"{r['categories'][n]['points']:.2f}") for n in names]
        writer.writerow([r["label"], *cells, f"{r['total']:.2f}"])
    return buf.getvalue()


# ============================================================================ explanations for students
_LEVEL_WORDS = {
    "MUST": "a requirement (MUST)", "MUST NOT": "a prohibition (MUST NOT)",
    "SHOULD": "a recommendation (SHOULD)", "SHOULD NOT": "a recommendation (SHOULD NOT)",
    "MAY": "an option (MAY)", "INFO": "behaviour the RFC leaves open",
}
_MAX_LINES = 40
CRLF, LF = "\\r\\n", "\\n"  # as escaped in transcripts
_MAX_CHARS = 400


def _plain_actual(actual: str, timeout: float) -> str:
    if actual.startswith("no complete reply before the timeout"):
        return f"did not answer within {timeout:g} s" + (actual[len("no complete reply before the timeout"):] or "")
    if actual.startswith("connection closed by the server"):
        return "closed the connection" + actual[len("connection closed by the server"):]
    if actual.startswith("connection reset by the server"):
        return "reset the connection (it probably crashed)" + actual[len("connection reset by the server"):]
    if actual.startswith("malformed reply"):
        return "sent something that is not a valid SMTP reply: " + actual[len("malformed reply "):]
    return f'answered "{actual}"'


def _wire_lines(transcript: Iterable[Mapping[str, Any]], direction: str) -> list[str]:
    """Escaped transcript data of one direction, split into lines at (escaped) line ends."""
    lines: list[str] = []
    pending = ""
    for entry in transcript:
        if entry.get("dir") != direction:
            continue
        pending += str(entry.get("data", ""))
        while "\\n" in pending:
            line, pending = pending.split("\\n", 1)
            lines.append(line + "\\n")
    if pending:
        lines.append(pending)
    out = [line if len(line) <= _MAX_CHARS else line[:_MAX_CHARS] + " …" for line in lines[:_MAX_LINES]]
    if len(lines) > _MAX_LINES:
        out.append(f"… {len(lines) - _MAX_LINES} more lines")
    return out


def explain(result: Mapping[str, Any], timeout: float, time_limit: float | None) -> str:
    """One paragraph in plain language: why this check did not earn full credit."""
    outcome = result.get("outcome")
    message = str(result.get("message") or "")
    level = str(result.get("level") or "")
    if message.startswith(NOT_RUN):
        limit = f"{time_limit:g} s " if time_limit else ""
        return (f"Not run: your server used up its time limit ({limit}for all checks together) before this check "
                "started. Servers that answer slowly, or not at all, make later checks run out of time.")
    if outcome == "error":
        return ("This check could not run: " + message + ". Usually your server was not running at that moment: it "
                "did not start, exited, or crashed during an earlier check (see the server output below).")
    if message.startswith("scenario did not finish within"):
        return ("This check did not finish in time (" + message + "). Your server answered too slowly or stopped "
                "answering; near the end of your time limit a check only gets what is left of it.")
    if "no usable greeting" in message:
        return ("Your server did not greet properly when a client connected (RFC 5321 requires a first reply "
                "starting with 220), so none of the checks could run. " + message)
    step = result.get("step") or {}
    expected = [str(e) for e in step.get("expected") or []]
    actual = str(step.get("actual") or "")
    what = _LEVEL_WORDS.get(level, "a rule")
    text = f"This check is {what} of RFC {result.get('rfc')} §{result.get('section')}. "
    sent = [line for line in _wire_lines(result.get("transcript") or [], "C") if line.strip()]
    if sent:
        last = sent[-1].removesuffix(CRLF).removesuffix(LF)
        text += f'After the grader sent "{last}", '
    else:
        text += "When the grader connected, "
    if expected:
        text += "the RFC allows " + " or ".join(expected)
        text += f", but your server {_plain_actual(actual, timeout)}." if actual else f". {message}"
    else:
        text += message
    if outcome == "non-strict":
        text += " A SHOULD is strongly recommended but not absolutely required, so this costs part of the credit."
    elif outcome == "fail":
        text += " Breaking a MUST makes the server non-conformant, so this check earns no credit."
    return text


def reproduce_commands(student: Student, result: Mapping[str, Any]) -> list[str]:
    node = f"{result.get('file')}::{result.get('id')}[{student.label}]"
    if student.kind == "command":
        target = f"{student.label}=cmd:{student.entry['command']}"
    elif student.kind == "address":
        target = f"{student.label}={student.entry['address']}"
    elif student.kind == "image":
        target = f"image:{student.entry['image']}"
    else:
        target = f"{student.label}=builtin"
    return [f"pytest {shlex.quote(node)} --smtp-target {shlex.quote(target)}"]


# ============================================================================ reports
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent / "report" / "templates")),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _transcript_lines(transcript: Iterable[Mapping[str, Any]], limit: int = 300) -> list[dict[str, str]]:
    out = []
    entries = list(transcript)
    for entry in entries[:limit]:
        data = str(entry.get("data", ""))
        if len(data) > 2000:
            data = data[:2000] + f" … ({len(data) - 2000} more characters)"
        direction = str(entry.get("dir", "*"))
        out.append({"t": f"{float(entry.get('t') or 0):8.3f}", "dir": {"C": "C:", "S": "S:"}.get(direction, "* "),
                    "cls": {"C": "c", "S": "s"}.get(direction, "e"), "data": data})
    if len(entries) > limit:
        out.append({"t": "", "dir": "", "cls": "e", "data": f"… {len(entries) - limit} more entries"})
    return out


def student_context(plan: Plan, record: dict[str, Any], student: Student, run: Mapping[str, Any],
                    timeout: float) -> dict[str, Any]:
    """Everything a student's page shows. Hidden scenarios contribute counts only: no id, title or detail."""
    rubric = plan.rubric
    identity = record["identity"]
    time_limit = float(student.entry.get("time_limit", rubric.time_limit))
    categories = []
    for cat in rubric.categories:
        c = record["categories"][cat.name]
        visible, failures = [], []
        hidden_total = hidden_passed = 0
        for s in record["scenarios"]:
            if s["category"] != cat.name:
                continue
            if s["hidden"]:
                if s["credit"] is not None:
                    hidden_total += 1
                    hidden_passed += s["credit"] == 1.0
                continue
            r = s["result"]
            row = {"id": s["id"], "title": s["title"], "outcome": s["outcome"], "scored_as": s["scored_as"],
                   "level": s["level"],
                   "credit": "excluded" if s["credit"] is None else f"{s['credit']:.2f}",
                   "anchor": "f-" + re.sub(r"[^A-Za-z0-9_-]", "_", s["id"]),
                   "failed": s["credit"] is not None and s["credit"] < 1.0}
            visible.append(row)
            if row["failed"]:
                step = r.get("step") or {}
                failures.append({**row, "compact": not r.get("transcript"), "rfc": r.get("rfc", ""),
                                 "section": r.get("section", ""),
                                 "quote": r.get("quote", ""), "message": r.get("message", ""),
                                 "explanation": explain(r, timeout, time_limit)
                                 + (" Not answering at all is not a behaviour the RFC leaves open, so this is "
                                    "scored as a failure." if s["scored_as"] != s["outcome"] else ""),
                                 "expected": [str(e) for e in step.get("expected") or []],
                                 "actual": str(step.get("actual") or ""),
                                 "sent": _wire_lines(r.get("transcript") or [], "C"),
                                 "received": _wire_lines(r.get("transcript") or [], "S"),
                                 "transcript": _transcript_lines(r.get("transcript") or []),
                                 "reproduce": reproduce_commands(student, r) if r.get("file") else []})
        categories.append({"name": cat.name, "description": cat.description, "points": _fmt(c["points"]),
                           "max": _fmt(c["max"]), "visible": visible, "failures": failures,
                           "hidden_total": hidden_total, "hidden_passed": hidden_passed,
                           "applicable": c["points"] is not None})
    logs = identity.get("logs") or {}
    status = (identity.get("details") or {}).get("exit_status")
    if status is None:
        ended = ""
    elif status < 0:
        ended = f"stopped by the grader at the end of the run (signal {-status})"
    else:
        ended = f"exited with status {status}" + (": it crashed or quit by itself" if status > 0 else "")
    return {
        "ended": ended,
        "title": rubric.title, "label": record["label"], "total": _fmt(record["total"]), "max": _fmt(record["max"]),
        "categories": categories, "hidden": record["hidden"], "status": record["status"],
        "spec": student.spec, "banner": identity.get("banner", ""), "keywords": identity.get("ehlo_keywords", []),
        "error": identity.get("error") or "", "time_limit": f"{time_limit:g}", "timeout": f"{timeout:g}",
        "logs": [(k, str(v)[-8000:]) for k, v in logs.items() if v], "run": run,
    }


def class_context(plan: Plan, records: list[dict[str, Any]], run: Mapping[str, Any]) -> dict[str, Any]:
    rubric = plan.rubric
    rows = []
    for r in records:
        rows.append({"rank": r["rank"], "label": r["label"], "href": "students/" + url_quote(r["label"]) + ".html",
                     "cells": [_fmt(r["categories"][c.name]["points"]) for c in rubric.categories],
                     "total": _fmt(r["total"]), "status": r["status"], "ok": r["status"] == "ok"})
    checks = []
    for sid, scenario in plan.scenarios.items():
        outcomes = [next(s for s in r["scenarios"] if s["id"] == sid) for r in records]
        full = sum(1 for s in outcomes if s["credit"] == 1.0)
        checks.append({"id": sid, "title": scenario.title, "category": plan.category_of[sid],
                       "hidden": sid in plan.hidden, "level": scenario.level.value, "full": full,
                       "of": len(outcomes),
                       "counts": ", ".join(f"{o} {n}" for o in OUTCOMES
                                           if (n := sum(1 for s in outcomes if s["outcome"] == o)))})
    checks.sort(key=lambda c: (c["full"], c["id"]))
    return {"title": rubric.title, "total": _fmt(rubric.total),
            "categories": [{"name": c.name, "max": _fmt(rubric.nominal_max(c)), "n": len(plan.members[c.name])}
                           for c in rubric.categories],
            "rows": rows, "checks": checks, "run": run}


def write_reports(out: Path, plan: Plan, students: list[Student], records: list[dict[str, Any]],
                  run: dict[str, Any], results_json: bytes, timeout: float) -> list[Path]:
    env = _environment()
    if not out.exists():
        out.mkdir(parents=True, mode=0o700)
    reports = out / "students"
    if not reports.exists():
        reports.mkdir(mode=0o700)
    by_label = {s.label: s for s in students}
    written: list[Path] = []

    def write(path: Path, text: str | bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        tmp.replace(path)
        written.append(path)

    current = set()
    student_template = env.get_template("student.html.j2")
    for record in records:
        page = reports / f"{record['label']}.html"
        current.add(page.name)
        write(page, student_template.render(**student_context(plan, record, by_label[record["label"]], run, timeout)))
    for stale in reports.glob("*.html"):  # students no longer in the class
        if stale.name not in current:
            stale.unlink()
    write(out / "class.html", env.get_template("class.html.j2").render(**class_context(plan, records, run)))
    write(out / "grades.csv", grades_csv(plan, records))
    write(out / "grades.json", json.dumps(grades_document(plan, records, run), indent=1) + "\n")
    if results_json:
        write(out / "results.json", results_json)
    return written


# ============================================================================ the command
def grade(rubric_path: Path, students_path: Path, out: Path, *, scenarios: list[str] | None = None,
          concurrency: int = 4, timeout: float = 10.0, isolation: str = "auto", uid_base: int | None = None,
          verbose: bool = False) -> int:
    """`smtp-conformance grade`: 0 grades written, 1 written but the run was incomplete, 2 configuration errors."""
    from .loader import Loader, load_requirement_ids

    problems: list[str] = []
    if concurrency < 1:
        problems.append("--concurrency: must be at least 1")
    if timeout <= 0:
        problems.append("--timeout: must be positive")
    rubric, rubric_problems = load_rubric(rubric_path)
    problems += [str(p) for p in rubric_problems]
    students, student_problems = load_students(students_path)
    problems += [str(p) for p in student_problems]
    if out.exists() and not out.is_dir():
        problems.append(f"--out {out}: exists and is not a folder")
    if rubric is None or problems:
        return _usage(problems)
    if scenarios:
        paths = [Path(p) for p in scenarios]
    elif rubric.scenario_paths:
        paths = rubric.scenario_paths
    else:
        from .cli import default_scenario_paths

        paths = default_scenario_paths()
    for p in paths:
        if not p.exists():
            problems.append(f"{p}: no such scenario file or folder")
    if problems:
        return _usage(problems)
    catalog = Loader(load_requirement_ids()).load_paths(paths)
    problems += [str(p) for p in catalog.problems]
    plan, plan_problems, warnings = make_plan(rubric, catalog.scenarios)
    problems += [str(p) for p in plan_problems]
    if problems:
        return _usage(problems)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        iso, note = Isolation.create(isolation, students, uid_base)
    except IsolationError as exc:
        return _usage([str(exc)])
    if note:
        print(f"note: {note}", file=sys.stderr)
    started = dt.datetime.now(dt.UTC)
    private = Path(tempfile.mkdtemp(prefix="smtpc-grade-"))  # 0700: students cannot read what runs here
    try:
        outcome = run_class(plan, students, iso, private, timeout=timeout, concurrency=concurrency, verbose=verbose)
    finally:
        iso.sweep()
        iso.cleanup()
        shutil.rmtree(private, ignore_errors=True)
    finished = dt.datetime.now(dt.UTC)
    run = {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"), "finished": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "duration_s": round(outcome.duration_s, 3), "complete": outcome.complete, "note": outcome.note,
           "isolation": iso.describe(), "timeout": timeout, "concurrency": concurrency,
           "scenario_paths": [str(p) for p in paths], "processes_killed_after_run": outcome.swept,
           "students": len(students), "scenarios": len(plan.scenarios)}
    records = score_students(plan, students, outcome.document, "" if outcome.complete else outcome.note)
    written = write_reports(out, plan, students, records, run, outcome.raw, timeout)
    _print_summary(plan, records)
    if not outcome.complete:
        print(f"warning: {outcome.note}", file=sys.stderr)
    print(f"graded {len(records)} students on {len(plan.scenarios)} scenarios in {outcome.duration_s:.1f} s; "
          f"reports in {out}/ ({', '.join(p.name for p in written if p.parent == out)}, students/)")
    return 0 if outcome.complete else 1


def _usage(problems: list[str]) -> int:
    for line in problems:
        print(line, file=sys.stderr)
    return 2


def _print_summary(plan: Plan, records: list[dict[str, Any]]) -> None:
    names = [c.name for c in plan.rubric.categories]
    width = max([len("student"), *(len(r["label"]) for r in records)])
    print(f"{'student':<{width}}  " + "  ".join(f"{n[:12]:>12}" for n in names) + f"  {'total':>8}  status")
    for r in records:
        cells = "  ".join(f"{_fmt(r['categories'][n]['points']):>12}" for n in names)
        print(f"{r['label']:<{width}}  {cells}  {r['total']:>8.2f}  {r['status'][:60]}")


# ============================================================================ pytest plugin part
# Loaded only by the grading run (`-p conformance.grading`); every hook is a no-op without
# --smtp-grading-select.
UIDS_VAR = "SMTPC_GRADING_UIDS"


def pytest_addoption(parser: Any) -> None:
    parser.getgroup("smtp-conformance").addoption(
        "--smtp-grading-select", metavar="FILE",
        help="(grading) JSON list of scenario ids: deselect every other scenario")


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    path = config.getoption("smtp_grading_select", None)
    if not path:
        return
    wanted = set(json.loads(Path(path).read_text()))
    keep = [i for i in items if getattr(getattr(i, "scenario", None), "id", None) in wanted]
    dropped = [i for i in items if getattr(getattr(i, "scenario", None), "id", None) not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_collection_finish(session: Any) -> None:
    """Start every student at once: the runner's start threads are sized for the targets already; this keeps
    a pool of at least that size whatever the engine's default."""
    if not session.config.getoption("smtp_grading_select", None):
        return
    from concurrent.futures import ThreadPoolExecutor

    from .plugin import STATE

    state = session.config.stash.get(STATE, None)
    if state is None or state.problems:
        return
    runner = state.get_runner()
    pool = ThreadPoolExecutor(max_workers=max(4, min(128, len(state.targets))), thread_name_prefix="grading-start")
    runner.loop.call_soon_threadsafe(runner.loop.set_default_executor, pool)


def pytest_sessionfinish(session: Any) -> None:
    """Stop every student at once (SIGTERM, one shared grace period, SIGKILL) before the engine's runner stops
    its targets one after another; it then finds them gone, reaps them and keeps their logs."""
    token = os.environ.get(TOKEN_VAR)
    if not token or not session.config.getoption("smtp_grading_select", None):
        return
    uids = {int(u) for u in os.environ.get(UIDS_VAR, "").split(",") if u.strip().isdigit()}
    terminate(uids, token, grace=3.0)


def terminate(uids: set[int], token: str, grace: float = 3.0) -> int:
    """SIGTERM every process of the student uids (or, without uids, carrying the run token), SIGKILL what is
    left after `grace` seconds (all of them share it); returns how many were still there for SIGKILL."""
    by_token = not uids  # with uids, every student process has one; only the grader's own helpers have the token
    victims = _marked(uids, token, by_token)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while victims and time.monotonic() < deadline:
        time.sleep(0.02)
        victims = _marked(uids, token, by_token)
    signalled = len(victims)
    for _ in range(50):
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
        victims = _marked(uids, token, by_token)
    return signalled


def _marked(uids: set[int], token: str, by_token: bool = True) -> list[int]:
    """Live processes whose real uid is one of `uids`, or (by_token) ours with the run token in their
    environment. The real uid comes from /proc/PID/status: a process can make itself non-dumpable, which
    hands its /proc files to root, but not change what status reports."""
    marker = f"{TOKEN_VAR}={token}".encode()
    me, my_uid = os.getpid(), os.getuid()
    found = []
    for pid, uid in _process_uids().items():
        if pid == me:
            continue
        hit = uid in uids
        if not hit and by_token and uid == my_uid:
            try:
                hit = marker in Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                hit = False
        if hit:
            found.append(pid)
    return found
