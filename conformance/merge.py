"""Combining and comparing results documents: merge (shards, or several runs side by side) and diff."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .results import FORMAT_VERSION, summarize


class MergeError(Exception):
    pass


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def merge(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One document from several: shards of one run, or runs against different targets.

    Results are keyed by (scenario id, target); a key present twice is an error unless both agree on the
    outcome (the same scenario run twice), so merging never hides a contradiction.
    """
    if not documents:
        raise MergeError("nothing to merge")
    for doc in documents:
        if doc.get("format_version") != FORMAT_VERSION:
            raise MergeError(f"unsupported format_version {doc.get('format_version')!r}")
    targets: dict[str, dict[str, Any]] = {}
    for doc in documents:
        for target in doc["targets"]:
            known = targets.get(target["label"])
            # a shard that never started a target knows less than one that did
            if known is None or (known.get("error") and not target.get("error")) or (
                    not known.get("banner") and target.get("banner")):
                targets[target["label"]] = target
    results: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in documents:
        for r in doc["results"]:
            key = (r["id"], r["target"])
            if key in results and results[key]["outcome"] != r["outcome"]:
                raise MergeError(f"{r['id']} [{r['target']}] is {results[key]['outcome']} in one document and "
                                 f"{r['outcome']} in another")
            results.setdefault(key, r)
    order = {label: i for i, label in enumerate(targets)}
    ordered = sorted(results.values(), key=lambda r: (r["file"], r["line"], order.get(r["target"], 1 << 30)))
    started = min(_parse_time(d["run"]["started"]) for d in documents)
    finished = max(_parse_time(d["run"]["finished"]) for d in documents)
    first = documents[0]
    return {
        "format_version": FORMAT_VERSION,
        "tool": first["tool"],
        "run": {
            "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "finished": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration_s": round((finished - started).total_seconds(), 3),
            "argv": first["run"]["argv"],
            "strict": any(d["run"].get("strict") for d in documents),
            "merged_from": len(documents),
        },
        "targets": list(targets.values()),
        "results": ordered,
        "summary": summarize(ordered),
    }


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (scenario, target): what changed between two runs."""
    before = {(r["id"], r["target"]): r for r in old["results"]}
    after = {(r["id"], r["target"]): r for r in new["results"]}
    changes = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a and b and a["outcome"] == b["outcome"]:
            continue
        changes.append({
            "id": key[0], "target": key[1],
            "old": a["outcome"] if a else None, "new": b["outcome"] if b else None,
            "message": (b or a or {}).get("message", ""),
        })
    return changes


RANK = {"pass": 0, "info": 1, "unsupported": 1, "skipped": 1, "non-strict": 2, "fail": 3, "error": 3}


def is_regression(change: dict[str, Any]) -> bool:
    return change["old"] is not None and change["new"] is not None and RANK[change["new"]] > RANK[change["old"]]


def format_diff(changes: list[dict[str, Any]]) -> str:
    if not changes:
        return "no changes"
    lines = []
    for c in changes:
        if c["old"] is None:
            what = f"new scenario: {c['new']}"
        elif c["new"] is None:
            what = f"gone (was {c['old']})"
        else:
            what = f"{c['old']} → {c['new']}" + ("  REGRESSION" if is_regression(c) else "")
        lines.append(f"{c['id']} [{c['target']}]: {what}")
    regressions = sum(1 for c in changes if is_regression(c))
    lines.append(f"\n{len(changes)} change(s), {regressions} regression(s)")
    return "\n".join(lines)
