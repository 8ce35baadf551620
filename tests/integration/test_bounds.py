"""Bounds that hold whatever a server does (issue 15), asserted without timing anything.

Hostile servers come from tests/servers/faulty.py: `flood-after-ehlo` (200 MB of binary reply lines per
connection), `slow-replies` (every reply 0.5-2 s late) and `connection-limit` (421 over 2 connections).
Memory is the suite process's own peak RSS (VmHWM), read in that process (a subprocess of the test).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from tests.support import PEAK_RSS_KIB, REPO, run_suite

FAULTY = f"{sys.executable} -m tests.servers.faulty --port {{port}}"
MIB = 1024 * 1024
LONG = ("too-many-recipients-452", "recipient-limit-orderly")  # 1001 replies each: 20 minutes when slow
# runs the command line in this process and prints its own peak RSS last, on stderr
MEASURED = (
    "import atexit, sys\n"
    "from conformance.cli import main\n"
    f"atexit.register(lambda: print('RSS', {PEAK_RSS_KIB}, file=sys.stderr))\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_a_flood_keeps_memory_output_and_reports_bounded(tmp_path: Path) -> None:
    out = tmp_path / "flood.json"
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED, "run", "--target", f"flood=cmd:{FAULTY} --fault flood-after-ehlo",
         "--timeout", "5", "--json", str(out), "--html", str(tmp_path / "flood.html")],
        capture_output=True, timeout=900, cwd=REPO)
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 1, stderr[-3000:]
    peak_kib = int(stderr.strip().splitlines()[-1].split()[1])
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert len(proc.stdout) + len(proc.stderr) <= MIB, f"{len(proc.stdout)} octets on stdout"
    document = json.loads(out.read_text())
    results = document["results"]
    flooded = [r for r in results if any("server octets elided" in str(e["data"]) for e in r["transcript"])]
    assert flooded, "the flood never reached a transcript: the case does not test anything"
    for r in results:  # 64 K characters of (escaped) data a result, whatever came over the wire
        assert sum(len(str(e["data"])) for e in r["transcript"]) <= 66 * 1024, r["id"]
    # the reports grow with the number of results, not with the 200 MB each connection was offered
    assert out.stat().st_size <= len(results) * 100 * 1024
    assert (tmp_path / "flood.html").stat().st_size <= len(results) * 100 * 1024


def test_slow_and_connection_limited_servers_get_the_verdicts_of_a_prompt_one(tmp_path: Path) -> None:
    # the 100-recipient scenarios take ~2 minutes at 0.5-2 s a reply: the budget must grow with the replies.
    # The two that send 1001 recipients take ~20 minutes each at this pace (their budget allows it): left out.
    files = ["rfc5321/4.5.3.1-size-limits.yaml", "rfc5321/3.3-mail-transactions.yaml",
             "rfc5321/4.1.1.1-ehlo.yaml", "rfc5321/4.3.2-sequencing.yaml", "rfc5321/3.1-session-initiation.yaml"]
    targets = {"prompt": f"{FAULTY}", "slow": f"{FAULTY} --fault slow-replies",
               "limited": f"{FAULTY} --fault connection-limit"}
    spec = tmp_path / "targets.yaml"
    spec.write_text(yaml.safe_dump({"targets": [{"label": k, "command": v, "workdir": str(REPO)}
                                                for k, v in targets.items()]}))
    # enough dialogues at once that the limited server is offered more sessions than it serves
    run = run_suite("--smtp-targets", str(spec), "--smtp-concurrency", "32", "-k", f"not {' and not '.join(LONG)}",
                    paths=[str(REPO / "scenarios" / f) for f in files], timeout=1200)
    assert run.document is not None, run.stdout[-3000:] + run.stderr[-2000:]
    verdicts: dict[str, dict[str, tuple[str, str | None]]] = {label: {} for label in targets}
    for r in run.document["results"]:
        verdicts[r["target"]][r["id"]] = (r["outcome"], r.get("cause"))
    assert len(verdicts["prompt"]) >= 30
    for label in ("slow", "limited"):
        changed = {k: (v, verdicts[label].get(k)) for k, v in verdicts["prompt"].items() if verdicts[label].get(k) != v}
        assert not changed, f"{label}: {changed}"
    refused = [r for r in run.document["results"] if r["target"] == "limited"
               and any("the server is busy" in str(e["data"]) for e in r["transcript"])]
    assert refused, "the connection limit was never hit: the case does not test anything"


def test_eight_shards_merged_equal_one_run(tmp_path: Path) -> None:
    snapshot = tmp_path / "scenarios"
    shutil.copytree(REPO / "scenarios" / "rfc5321", snapshot / "rfc5321")
    shutil.copy(REPO / "scenarios" / "_fragments.yaml", snapshot)
    whole = run_suite(paths=[str(snapshot)])
    assert whole.document is not None, whole.stdout[-3000:]
    shards = []
    for i in range(1, 9):
        run = run_suite("--smtp-shard", f"{i}/8", paths=[str(snapshot)])
        assert run.document is not None, run.stdout[-3000:]
        path = tmp_path / f"shard{i}.json"
        path.write_text(json.dumps(run.document))
        shards.append(path)
    merged_path = Path(tempfile.mkdtemp(dir=tmp_path)) / "merged.json"
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "merge", *map(str, shards), "--json",
                           str(merged_path)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode in (0, 1), proc.stderr
    merged = json.loads(merged_path.read_text())

    def essence(document: dict) -> list[tuple]:
        return [(r["id"], r["target"], r["outcome"], r.get("cause"), r["decisive_code"], tuple(r["codes"]))
                for r in document["results"]]

    assert sorted(essence(merged)) == sorted(essence(whole.document))
    assert merged["summary"] == whole.document["summary"]
