"""The rubric (conformance/schema/rubric.schema.json), the plan of scored scenarios, and the students file."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..problems import Problem, schema_problems
from ..yamlload import YamlError, load_documents

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
LABEL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")

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
    from ..targets import load_targets_file

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
