"""Baselines: a target's expected non-PASS results, each with the reason it is a genuine deviation.

A baseline is `baselines/<name>.yaml` or a folder `baselines/<name>/*.yaml` (merged), each holding
`deviations: [{id, outcome, actual, reason}]`. Comparing a run with it tells new deviations from fixed ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .problems import Problem
from .yamlload import YamlError, load_documents

NON_PASS = ("fail", "non-strict", "info", "unsupported", "error", "skipped")


@dataclass(frozen=True)
class Deviation:
    id: str
    outcome: str
    actual: str
    reason: str
    file: str
    line: int


@dataclass
class Baseline:
    name: str
    deviations: dict[str, Deviation] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def load_baseline(path: Path) -> Baseline:
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    baseline = Baseline(path.stem if path.is_file() else path.name)
    for file in files:
        try:
            docs = load_documents(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            baseline.problems.append(Problem(str(file), 0, f"cannot read: {exc}"))
            continue
        except YamlError as exc:
            baseline.problems.append(Problem(str(file), exc.line, exc.message))
            continue
        for doc in docs:
            entries = doc.data.get("deviations") if isinstance(doc.data, dict) else None
            if not isinstance(entries, list):
                baseline.problems.append(Problem(str(file), doc.line(()), "expected a 'deviations' list"))
                continue
            for i, entry in enumerate(entries):
                line = doc.line(("deviations", i))
                if not isinstance(entry, dict) or not {"id", "outcome", "reason"} <= set(entry):
                    baseline.problems.append(Problem(str(file), line, "a deviation needs id, outcome and reason"))
                    continue
                if entry["outcome"] not in NON_PASS:
                    baseline.problems.append(Problem(str(file), line, f"outcome must be one of {', '.join(NON_PASS)}"))
                    continue
                if entry["id"] in baseline.deviations:
                    first = baseline.deviations[entry["id"]]
                    baseline.problems.append(Problem(str(file), line,
                                                     f"'{entry['id']}' already listed at {first.file}:{first.line}"))
                    continue
                baseline.deviations[entry["id"]] = Deviation(
                    entry["id"], entry["outcome"], str(entry.get("actual", "")),
                    " ".join(str(entry["reason"]).split()), str(file), line)
    return baseline


@dataclass
class Comparison:
    new: list[dict[str, Any]]  # non-PASS results the baseline does not expect (or with another outcome)
    fixed: list[Deviation]  # expected deviations that did not happen (now PASS or another outcome)
    expected: list[dict[str, Any]]

    @property
    def clean(self) -> bool:
        return not self.new and not self.fixed


def compare(results: list[dict[str, Any]], baseline: Baseline) -> Comparison:
    # a scenario SKIPPED for the target's profile (C3) says nothing about the server: neither new nor fixed
    results = [r for r in results if not r.get("profile_skip")]
    seen = {r["id"]: r for r in results}
    new, expected = [], []
    for r in results:
        dev = baseline.deviations.get(r["id"])
        if r["outcome"] == "pass" and dev is None:
            continue
        if dev is not None and dev.outcome == r["outcome"]:
            expected.append(r)
        elif r["outcome"] != "pass":
            new.append(r)
    fixed = [d for d in baseline.deviations.values()
             if d.id in seen and seen[d.id]["outcome"] != d.outcome]
    return Comparison(new, fixed, expected)


def format_comparison(label: str, comparison: Comparison) -> str:
    lines = []
    for r in comparison.new:
        lines.append(f"{label}: NEW {r['outcome'].upper()} {r['id']}: {r['message']}")
    for d in comparison.fixed:
        lines.append(f"{label}: FIXED {d.id} (baseline expected {d.outcome}; {d.file}:{d.line})")
    return "\n".join(lines)


def baseline_yaml(results: list[dict[str, Any]], previous: Baseline | None = None) -> str:
    """A baseline listing every non-PASS result; reasons kept from the previous baseline where they exist."""
    entries = []
    for r in sorted(results, key=lambda r: r["id"]):
        if r["outcome"] == "pass" or r.get("profile_skip"):
            continue
        old = previous.deviations.get(r["id"]) if previous else None
        actual = (r.get("step") or {}).get("actual") or r["message"]
        entries.append({"id": r["id"], "outcome": r["outcome"], "actual": actual,
                        "reason": old.reason if old and old.outcome == r["outcome"] else "TODO: explain why"})
    return yaml.safe_dump({"deviations": entries}, sort_keys=False, allow_unicode=True, width=110)
