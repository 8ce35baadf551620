"""SARIF 2.1.0 for code-scanning UIs: one rule per scenario, one result per FAIL / NON-STRICT finding,
located at the scenario YAML line of the deciding step.

Validated against the OASIS SARIF 2.1.0 schema (errata 01) in tests/unit/test_report_outputs.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import findings as fnd
from .github import relative_path

__all__ = ["SARIF_SCHEMA_URI", "render_sarif", "write_sarif"]

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
_LEVEL = {"fail": "error", "non-strict": "warning"}


def _rule(f: fnd.Finding) -> dict[str, Any]:
    r = f.result
    quote = str(r.get("quote") or "")
    tags = [str(t) for t in r.get("tags") or []] + [f"rfc{f.rfc}"]
    return {
        "id": f.id,
        "name": "".join(w.capitalize() for w in f.id.replace("_", "-").split("-") if w),
        "shortDescription": {"text": f.title or f.id},
        "fullDescription": {"text": f"{f.where}: \u201c{quote}\u201d" if quote else f.where},
        "help": {"text": f"{f.where} ({f.level}): {quote}\nScenario: {r.get('file')}:{r.get('line')}"},
        "defaultConfiguration": {"level": "error" if f.level.startswith("MUST") or f.level == "SHALL"
                                 else "warning"},
        "properties": {"tags": tags, "rfc": f.rfc, "section": f.section, "level": f.level},
    }


def render_sarif(doc: Mapping[str, Any], root: Path | None = None) -> dict[str, Any]:
    tool = doc.get("tool") if isinstance(doc.get("tool"), Mapping) else {}
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for label, items in fnd.findings_by_target(doc).items():
        for f in items:
            if f.id not in index:
                index[f.id] = len(rules)
                rules.append(_rule(f))
            message = (f"[{label}] {f.outcome.upper()} ({f.level}, {f.where}): {f.title}. "
                       f"Expected: {f.expected or '-'} / Actual: {f.actual or '-'}")
            result: dict[str, Any] = {
                "ruleId": f.id,
                "ruleIndex": index[f.id],
                "level": _LEVEL[f.outcome],
                "message": {"text": message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": relative_path(f.file, root)},
                    "region": {"startLine": max(1, f.line)},
                }}],
                "partialFingerprints": {"scenarioTarget/v1": f"{f.id}/{label}"},
                "properties": {"target": label, "outcome": f.outcome},
            }
            if f.result.get("baselined"):
                result["baselineState"] = "unchanged"
                result["suppressions"] = [{"kind": "external", "justification": "listed in the target's baseline"}]
            results.append(result)
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": str(tool.get("name") or "smtp-conformance"),
                                "version": str(tool.get("version") or ""), "rules": rules}},
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": {"targets": fnd.targets_of(doc)},
        }],
    }


def write_sarif(doc: Mapping[str, Any], path: Path, root: Path | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(render_sarif(doc, root), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
