#!/usr/bin/env python3
"""Benchmark: grading a class of 30 student servers against grading 1, with the same rubric.

The students are tests/servers/faulty.py processes (`command` targets): by default all the same correct
server, so that the ratio measures what the class size costs; with --mixed, a class with a mix of fault
sets. They are graded with the test rubric over the fixed scenario subset (tests/grading/rubric.yaml), or
with --rubric/--scenarios over the catalog. Prints both wall times, their ratio (the target is at most 3:
the class is graded in one concurrent run, not one student after another) and the peak memory of the
grader and of its largest child process (the pytest run).
Run: `.venv/bin/python benchmarks/bench_grading.py [--students 30] [--rubric examples/grading/rubric.yaml]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUBRIC = REPO / "tests" / "grading" / "rubric.yaml"
# a plausible class: most servers mostly right, each with its own mistakes
FAULT_SETS = [(), ("no-sequencing",), ("no-postmaster",), ("strict-pre-helo",), ("lf-ends-data",), ("wrong-codes",),
              ("no-quit-close",), ("no-rset-state",), ("bare-lf-lines",), ("no-null-sender",)]


def student_python() -> str:
    """An interpreter that unprivileged uids can run (students run under their own uid when we are root)."""
    system = Path("/usr/bin/python3")
    return str(system) if system.exists() and os.access(system, os.X_OK) else sys.executable


def students_file(folder: Path, count: int, mixed: bool) -> Path:
    lines = ["targets:"]
    for i in range(count):
        faults = FAULT_SETS[i % len(FAULT_SETS)] if mixed else ()
        extra = f" --fault {','.join(faults)}" if faults else ""
        lines += [f"  - label: s{i + 1:02d}",
                  f"    command: {student_python()} -m tests.servers.faulty --port {{port}}{extra}",
                  f"    workdir: {REPO}"]
    path = folder / f"students-{count}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(count: int, folder: Path, args: argparse.Namespace) -> dict[str, float]:
    """Grade `count` students in a fresh child process; its wall time and peak memory."""
    out = folder / f"out-{count}"
    students = students_file(folder, count, args.mixed)
    code = (
        "import json, resource, sys, time\n"
        "from pathlib import Path\n"
        "from conformance.grading import grade\n"
        "t = time.monotonic()\n"
        f"rc = grade(Path({str(args.rubric)!r}), Path({str(students)!r}), Path({str(out)!r}),\n"
        f"           scenarios={args.scenarios!r}, timeout={args.timeout!r}, concurrency={args.concurrency!r})\n"
        "wall = time.monotonic() - t\n"
        "me = int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) / 1024  # its own peak\n"
        "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print('BENCH ' + json.dumps({'rc': rc, 'wall': wall, 'grader_mib': me, 'child_mib': kids}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=1800)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise SystemExit(f"grading {count} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(line[6:])
    grades = json.loads((out / "grades.json").read_text())
    result["suite_s"] = grades["run"]["duration_s"]
    result["scenarios"] = grades["run"]["scenarios"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--rubric", type=Path, default=RUBRIC)
    parser.add_argument("--scenarios", action="append", help="scenario folders (default: the rubric's)")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-reply timeout (default 2)")
    parser.add_argument("--concurrency", type=int, default=4, help="dialogues at once per student (default 4)")
    parser.add_argument("--mixed", action="store_true", help="students with different faults (some of them wait "
                        "for reply timeouts, which the correct single student never does)")
    parser.add_argument("--repeat", type=int, default=3, help="take the best of N runs of each size (default 3)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-grading-"))
    try:
        runs = {}
        for count in (1, args.students):
            best = None
            for _ in range(args.repeat):
                r = measure(count, folder, args)
                best = r if best is None or r["wall"] < best["wall"] else best
            runs[count] = best
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{'students':>8} {'scenarios':>9} {'wall s':>8} {'suite s':>8} {'grader MiB':>11} {'child MiB':>10}")
    for count, r in runs.items():
        print(f"{count:>8} {r['scenarios']:>9} {r['wall']:>8.2f} {r['suite_s']:>8.2f} {r['grader_mib']:>11.1f} "
              f"{r['child_mib']:>10.1f}")
    ratio = runs[args.students]["wall"] / runs[1]["wall"]
    verdict = "OK" if ratio <= 3 else "TOO SLOW"
    print(f"\nratio {args.students}/1: {ratio:.2f}× (target ≤ 3×: {verdict}); "
          f"{os.cpu_count()} CPUs; peak RSS of this benchmark's children "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f} MiB")
    return 0 if ratio <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
