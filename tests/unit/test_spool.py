"""The results spool: every entry back in full from disk, whatever order entries are added and read in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.results import LEFT_OUT, RUN_TRANSCRIPT_BUDGET, Spool


def entry(n: int, outcome: str = "pass", size: int = 10) -> dict[str, Any]:
    return {"id": f"s{n}", "target": "t", "outcome": outcome,
            "transcript": [{"t": 0.0, "dir": "S", "data": "x" * size}]}


def test_entries_read_back_in_full_between_additions(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    added = []
    for n in range(50):
        added.append(entry(n, size=n * 7))
        spool.add(added[-1])
        if n % 7 == 3:  # a read in the middle must not make the next entry overwrite an earlier one
            assert spool.full(added[n // 2]) == added[n // 2]
    assert [spool.full({"id": e["id"], "target": "t"}) for e in added] == added
    spool.close()


def test_memory_keeps_slim_copies_once_the_budget_is_used(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    big = RUN_TRANSCRIPT_BUDGET // 2 - 300  # two of them fit in the budget, with their entries' overhead
    kept = [spool.add(entry(n, "pass", big)) for n in range(3)]
    assert len(kept[0]["transcript"][0]["data"]) == big
    assert kept[2]["transcript"][0]["data"] == LEFT_OUT
    failed = spool.add(entry(9, "fail", big))
    assert LEFT_OUT in [e["data"] for e in failed["transcript"]] and len(failed["transcript"][0]["data"]) < big
    assert spool.full(kept[2])["transcript"][0]["data"] == "x" * big  # the disk has it all
    spool.close()


def test_write_json_streams_full_entries(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    full = [entry(n, "fail", RUN_TRANSCRIPT_BUDGET) for n in range(3)]
    slim = [spool.add(e) for e in full]
    spool.write_json({"format_version": 1, "results": slim, "summary": {"total": 3}}, tmp_path / "r.json")
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["results"] == full and document["summary"] == {"total": 3}
    spool.close()


def test_fields_set_after_the_entry_was_written_reach_the_json(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    slim = spool.add(entry(1, "fail", 100))
    assert spool.holds(slim) and not spool.holds(entry(2))
    spool.amend(slim, {"nodeid": "a.yaml::s1[t]", "baselined": True})
    spool.amend(entry(2), {"nodeid": "never written"})  # not held: nothing to amend
    assert spool.full(slim) == {**entry(1, "fail", 100), "nodeid": "a.yaml::s1[t]", "baselined": True}
    spool.write_json({"results": [slim, entry(2)]}, tmp_path / "r.json")
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert results[0]["nodeid"] == "a.yaml::s1[t]" and results[1] == entry(2)
    spool.close()
