"""Several runs in one picture: shard + merge equals one run; diff; baselines of expected deviations."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import REPO, run_suite

ENGINE = REPO / "tests" / "corpus" / "engine" / "scenarios"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def essence(document: dict) -> list[tuple]:
    return [(r["id"], r["target"], r["outcome"], r["level"], r["decisive_code"], tuple(r["codes"]))
            for r in document["results"]]


def test_shards_merged_equal_one_run(tmp_path: Path) -> None:
    # a snapshot, so that the catalog cannot change between the runs being compared
    snapshot = tmp_path / "scenarios"
    shutil.copytree(REPO / "scenarios" / "rfc5321", snapshot / "rfc5321")
    shutil.copy(REPO / "scenarios" / "_fragments.yaml", snapshot)
    for name in ("features.yaml", "delivery.yaml"):
        shutil.copy(ENGINE / name, snapshot / name)
    PATHS = [str(snapshot)]  # noqa: N806
    whole = run_suite(paths=PATHS)
    shards = []
    for i in (1, 2, 3):
        run = run_suite("--smtp-shard", f"{i}/3", paths=PATHS)
        assert run.document is not None and run.document["results"], f"shard {i} empty"
        path = tmp_path / f"shard{i}.json"
        path.write_text(json.dumps(run.document))
        shards.append(path)
    sizes = [len(json.loads(p.read_text())["results"]) for p in shards]
    assert sum(sizes) == len(whole.document["results"])
    merged_json, merged_html = tmp_path / "merged.json", tmp_path / "merged.html"
    proc = cli("merge", *map(str, shards), "--json", str(merged_json), "--html", str(merged_html))
    assert proc.returncode in (0, 1), proc.stderr
    merged = json.loads(merged_json.read_text())
    # tokens, timings and transcripts differ from run to run; what was judged must not
    assert essence(merged) == essence(whole.document)
    assert merged["summary"] == whole.document["summary"]
    assert [t["label"] for t in merged["targets"]] == [t["label"] for t in whole.document["targets"]]
    assert merged_html.read_text().count('class="row') >= len({r["id"] for r in merged["results"]})


def test_merge_refuses_contradictions(tmp_path: Path) -> None:
    run = run_suite("-k", "must-miss", paths=[str(ENGINE / "features.yaml")])
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(run.document))
    doc = json.loads(json.dumps(run.document))
    doc["results"][0]["outcome"] = "pass"
    b.write_text(json.dumps(doc))
    proc = cli("merge", str(a), str(b), "--json", str(tmp_path / "m.json"))
    assert proc.returncode == 2 and "fail in one document and pass in another" in proc.stderr


def test_diff_shows_regressions(tmp_path: Path) -> None:
    run = run_suite("-k", "quit or must-miss", paths=[str(ENGINE / "features.yaml")])
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(run.document))
    doc = json.loads(json.dumps(run.document))
    for r in doc["results"]:
        if r["id"] == "engine-quit-close":
            r["outcome"] = "fail"
    new.write_text(json.dumps(doc))
    proc = cli("diff", str(old), str(new))
    assert proc.returncode == 0
    assert "engine-quit-close [builtin]: pass → fail  REGRESSION" in proc.stdout
    assert "engine-must-miss" not in proc.stdout
    assert cli("diff", str(old), str(new), "--fail-on-regression").returncode == 1
    assert cli("diff", str(new), str(old), "--fail-on-regression").returncode == 0


def test_baseline_expected_deviation_does_not_fail_and_new_one_does(tmp_path: Path) -> None:
    baseline = tmp_path / "builtin.yaml"
    baseline.write_text(yaml.safe_dump({"deviations": [
        {"id": "engine-must-miss", "outcome": "fail", "reason": "the scenario wants 554 on purpose"},
        {"id": "engine-quit-close", "outcome": "fail", "reason": "pretend it used to fail"},
    ]}))
    run = run_suite("--smtp-baseline", str(baseline), "-k", "must-miss or quit", paths=[str(ENGINE / "features.yaml")])
    assert run.exit_code == 0, run.stdout[-2000:]
    assert run.document["baselines"]["builtin"] == {
        "new": [], "fixed": [{"id": "engine-quit-close", "expected": "fail"}]}
    assert "FIXED engine-quit-close" in run.stdout
    strict = run_suite("--smtp-baseline", str(baseline), "-k", "should-miss", "--smtp-strict",
                       paths=[str(ENGINE / "features.yaml")])
    assert strict.exit_code == 1
    assert strict.document["baselines"]["builtin"]["new"] == [{"id": "engine-should-miss", "outcome": "non-strict"}]
    assert "NEW NON-STRICT engine-should-miss" in strict.stdout


def test_update_baseline_keeps_reasons(tmp_path: Path) -> None:
    baseline = tmp_path / "builtin.yaml"
    baseline.write_text(yaml.safe_dump({"deviations": [
        {"id": "engine-must-miss", "outcome": "fail", "reason": "kept reason"}]}))
    run_suite("--smtp-baseline", str(baseline), "--smtp-update-baseline", "-k", "miss",
              paths=[str(ENGINE / "features.yaml")])
    updated = yaml.safe_load(baseline.read_text())["deviations"]
    by_id = {d["id"]: d for d in updated}
    assert by_id["engine-must-miss"]["reason"] == "kept reason"
    assert by_id["engine-should-miss"]["outcome"] == "non-strict"
    assert by_id["engine-should-miss"]["reason"].startswith("TODO")


def test_bad_shard_is_a_usage_error() -> None:
    run = run_suite("--smtp-shard", "4/3", paths=[str(ENGINE / "features.yaml")])
    assert run.exit_code == 2 and "--smtp-shard '4/3'" in run.stdout + run.stderr
