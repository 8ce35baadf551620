#!/usr/bin/env python3
"""Benchmark: how much the suite's concurrency buys, against the embedded server and a real Postfix.

Prints, per target: suite wall time, the sum of per-scenario dialogue times, their ratio (well below 1
means dialogues overlap), and the peak memory of the run. Ratios, not absolute times, are what to compare
across machines. Run: `make bench` or `.venv/bin/python benchmarks/bench_suite.py [--concurrency N]`.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_suite(target: list[str], concurrency: int, out: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(REPO / "scenarios"),
           "--smtp-json", str(out), "--smtp-concurrency", str(concurrency), *target]
    started = time.monotonic()
    subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - started
    return wall, json.loads(out.read_text())


def start_postfix(tmp: Path) -> tuple[list[str], Path] | None:
    script = REPO / "scripts" / "servers" / "postfix"
    if subprocess.run([str(script), "check"], capture_output=True).returncode != 0:
        return None
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    state = Path(tempfile.mkdtemp(prefix="bench-postfix-", dir="/tmp"))
    state.chmod(0o755)
    subprocess.run([str(script), "start", str(port), str(state)], check=True, capture_output=True)
    return ["--smtp-target", f"postfix=127.0.0.1:{port}"], state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    targets: list[tuple[str, list[str]]] = [("builtin", ["--smtp-target", "builtin"])]
    postfix = start_postfix(tmp)
    if postfix:
        targets.append(("postfix", postfix[0]))
    else:
        print("postfix not installed (scripts/servers/install postfix): skipped", file=sys.stderr)
    print(f"{'target':<10} {'scenarios':>9} {'wall s':>8} {'sum s':>8} {'wall/sum':>9} {'serial wall/sum':>16} "
          f"{'peak MiB':>9}")
    try:
        for name, target in targets:
            wall, doc = run_suite(target, args.concurrency, tmp / f"{name}.json")
            serial_wall, serial_doc = run_suite(target, 1, tmp / f"{name}-serial.json")
            total = sum(r["duration_s"] for r in doc["results"]) or 1e-9
            serial_total = sum(r["duration_s"] for r in serial_doc["results"]) or 1e-9
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"{name:<10} {len(doc['results']):>9} {wall:>8.2f} {total:>8.2f} {wall / total:>9.2f} "
                  f"{serial_wall / serial_total:>16.2f} {peak:>9.1f}")
    finally:
        if postfix:
            subprocess.run([str(REPO / "scripts" / "servers" / "postfix"), "stop", str(postfix[1])],
                           capture_output=True)
    print("\nwall/sum below 1: dialogues overlap (concurrency "
          f"{args.concurrency}); 'serial' is the same suite with --smtp-concurrency 1 for comparison.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
